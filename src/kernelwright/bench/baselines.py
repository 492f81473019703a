"""The baselines a candidate is timed against, built inside the bench worker from trusted task code.

* ``eager`` — the task's ``Model`` as written.
* ``native`` — the task's ``NATIVE(model, *inputs)``: PyTorch's fused op where one exists
  (``F.rms_norm``, ``F.layer_norm``, ``torch.softmax``, ...).
* ``compile`` — ``torch.compile(Model, dynamic=False)``, compiled afresh for each shape
  (``torch._dynamo.reset()`` first: a recompiling dynamic-shape baseline is unfairly slow); its compile
  time is reported.
* ``peer:<name>`` — implementations the task declares in ``PEERS = {"liger": fn}`` with
  ``fn(model, *inputs)``; one whose package is not installed is skipped with a note.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, Callable, Sequence

KINDS = ("eager", "native", "compile", "peers")
DEFAULT = {"cuda": KINDS, "cpu": ("eager", "native")}


def parse_kinds(text: str | None, device: str) -> tuple[str, ...]:
    """``eager,native,compile,peers`` (any subset, comma-separated) or None for the device's default."""
    if text is None:
        return DEFAULT["cuda" if device.startswith("cuda") else "cpu"]
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        from kernelwright.errors import UsageError

        raise UsageError(f"Unknown baseline(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}.")
    return kinds


def build(module: ModuleType, eager, input_sets: Sequence[Sequence[Any]], kinds: Sequence[str],
          device: str) -> tuple[dict[str, Callable], dict[str, Any]]:
    """Callables ``fn(inputs)`` for each available baseline, and notes (compile seconds, skips)."""
    import torch

    calls: dict[str, Callable] = {}
    notes: dict[str, Any] = {}
    if "eager" in kinds:
        calls["eager"] = lambda xs: eager(*xs)
    native = getattr(module, "NATIVE", None)
    if "native" in kinds:
        if callable(native):
            calls["native"] = lambda xs: native(eager, *xs)
        else:
            notes["native"] = "the task declares no NATIVE op"
    if "compile" in kinds:
        torch._dynamo.reset()
        compiled = torch.compile(eager, dynamic=False)
        started = time.perf_counter()
        try:
            compiled(*input_sets[0])
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            notes["compile_seconds"] = round(time.perf_counter() - started, 2)
            calls["compile"] = lambda xs: compiled(*xs)
        except Exception as exc:  # noqa: BLE001 -- a baseline that cannot compile is reported, not fatal
            notes["compile"] = f"torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}"
    if "peers" in kinds:
        for name, fn in dict(getattr(module, "PEERS", {})).items():
            try:
                fn(eager, *input_sets[0])
                calls[f"peer:{name}"] = lambda xs, fn=fn: fn(eager, *xs)
            except ImportError as exc:
                notes[f"peer:{name}"] = f"not installed ({exc.name or exc})"
            except Exception as exc:  # noqa: BLE001
                notes[f"peer:{name}"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return calls, notes
