"""Inputs for verification: the task's own tensors, redrawn from several distributions, in each dtype.

Every case gets a fresh secret seed; floating inputs are redrawn from the case's distribution and cast
to its dtype, integer inputs (targets, positions) are left as the task made them. The reference model is
the task's ``Model`` with parameters rounded to the case's dtype, so parameter rounding is never counted
as the candidate's error.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from kernelwright.tasks.task import instantiate

# "task" keeps the task's own tensors; the others redraw every floating input. The cycle is ordered
# so that, with three dtypes, consecutive shapes give every dtype the task's own and signed inputs.
DISTRIBUTIONS = ("task", "normal", "small", "uniform", "heavy_tailed", "large")
# Drawn only by the fuzzer: magnitudes near the dtype's range (|x|² around the dtype's largest value, where
# a kernel that squares before upcasting overflows) and special values (a few NaN and ±inf) that every
# op defines by propagation.
FUZZ_DISTRIBUTIONS = ("extreme", "special")


@dataclass
class Case:
    """One verification case: a shape, a dtype, a distribution and a seed, with its built objects."""

    id: str
    label: str
    knobs: dict[str, int]
    dtype: str
    distribution: str
    seed: int
    inputs: list[Any]
    init_inputs: list[Any]
    model: Any  # the task's Model in the case dtype, on CPU
    variants: list["Case"] = field(default_factory=list)  # more input sets of this shape, run after it
    init_varied: bool = False  # built with other constructor arguments than get_init_inputs() returns
    eager_s: float | None = None  # one call of the task's Model on these inputs, on the case's device
    # build_case's arguments when the inputs were drawn on a GPU: the worker draws them again there from
    # these (the same tensors, in milliseconds) instead of loading gigabytes through a file
    draw: dict[str, Any] | None = None

    def job(self, *, repeat: int) -> dict[str, Any]:
        """What the worker needs to run ModelNew on this case (no reference outputs, ever). An input set
        drawn on a GPU goes as its ``draw`` arguments (a dict) instead of its tensors."""
        return dict(id=self.id, seed=self.seed, dtype=self.dtype, init_inputs=self.init_inputs,
                    state_dict={k: v.clone() for k, v in self.model.state_dict().items()},
                    inputs=self.draw or self.inputs, repeat=repeat,
                    variants=[v.draw or v.inputs for v in self.variants],
                    probe=bool(self.variants), eager_s=self.eager_s)

    def describe(self) -> dict[str, Any]:
        found = dict(id=self.id, shape=self.label, knobs=self.knobs, dtype=self.dtype,
                     distribution=self.distribution, seed=self.seed)
        if self.init_varied:  # the reproducer needs them: they are not what get_init_inputs() returns
            found["init_inputs"] = [v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
                                    for v in self.init_inputs]
        return found


def redraw(x, distribution: str, generator, dtype: str = "float32"):
    import torch

    if distribution == "task":
        return x
    shape = x.shape
    on = {"device": generator.device}  # drawn where the generator lives: on a GPU, no host round trip
    if distribution == "normal":
        return torch.randn(shape, generator=generator, **on)
    if distribution == "uniform":
        return torch.rand(shape, generator=generator, **on) * 2 - 1
    if distribution == "heavy_tailed":
        # Student-t with 3 degrees of freedom: normal over the square root of a scaled chi-square.
        z = torch.randn(shape, generator=generator, **on)
        chi = torch.randn((3, *shape), generator=generator, **on).pow(2).sum(0) / 3
        return z / chi.clamp_min(1e-3).sqrt()
    if distribution == "small":  # where an epsilon inside a norm stops being negligible
        return torch.randn(shape, generator=generator, **on) * 1e-3
    if distribution == "large":
        return torch.randn(shape, generator=generator, **on) * 100
    if distribution == "extreme":
        return torch.randn(shape, generator=generator, **on) * (torch.finfo(getattr(torch, dtype)).max ** 0.5 / 4)
    if distribution == "special":
        x = torch.randn(shape, generator=generator, **on)
        pick = torch.rand(shape, generator=generator, **on)
        x[pick < 0.01] = float("nan")
        x[(pick >= 0.01) & (pick < 0.02)] = float("inf")
        x[(pick >= 0.02) & (pick < 0.03)] = float("-inf")
        # at 1% each a small fuzz shape would often draw none: every tensor gets at least one of each
        flat = x.view(-1)
        at = torch.randperm(flat.numel(), generator=generator, **on)[:3]
        flat[at] = torch.tensor([float("nan"), float("inf"), float("-inf")], **on)[:len(at)]
        return x
    raise ValueError(f"unknown distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS + FUZZ_DISTRIBUTIONS)}")


def build_case(module: ModuleType, *, case_id: str, label: str, knobs: dict[str, int], dtype: str,
               distribution: str, seed: int, model_seed: int | None = None,
               init_override: dict[int, Any] | None = None, device: str = "cpu") -> Case:
    """Inputs drawn from ``seed``; Model's parameters from ``model_seed`` (default: ``seed``), so several
    input sets can share one model. ``init_override`` replaces constructor arguments by position; the
    task's Model raising on them raises here.

    ``device``: where the inputs are drawn and stay (the Model stays on the CPU). Drawing a multi-GB input
    on the host takes seconds per GB; on a GPU it is free, and two processes drawing from the same seed on
    the same kind of device get the same tensors (the bench's worker and its parent's re-check do)."""
    import torch

    torch.manual_seed(seed)
    with torch.device(device):
        inputs, init_inputs = instantiate(module, knobs)
    for position, value in (init_override or {}).items():
        init_inputs[position] = value
    generator = torch.Generator(device).manual_seed(seed + 1)
    torch_dtype = getattr(torch, dtype)
    cast = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            x = redraw(x.to(device).float(), distribution, generator, dtype).to(torch_dtype).contiguous()
        cast.append(x.to(device) if isinstance(x, torch.Tensor) else x)
    model_seed = seed if model_seed is None else model_seed
    torch.manual_seed(model_seed)
    model = module.Model(*init_inputs).to(torch_dtype).eval()
    draw = None if device == "cpu" else dict(case_id=case_id, label=label, knobs=dict(knobs), dtype=dtype,
                                              distribution=distribution, seed=seed, model_seed=model_seed,
                                              init_override=init_override)
    return Case(case_id, label, dict(knobs), dtype, distribution, model_seed, cast, init_inputs, model,
                init_varied=bool(init_override), draw=draw)


def on_host(case: Case) -> Case:
    """``case`` with its inputs moved to the CPU (where the verifier keeps a benchmark-size case between
    judging slices); its ``draw`` stays, so the worker still draws them on the GPU."""
    import torch

    case.inputs = [x.cpu() if isinstance(x, torch.Tensor) else x for x in case.inputs]
    return case


def reference_outputs(case: Case, device: str, *, on_host: bool = False) -> tuple[list, list]:
    """(float64 reference, the task's Model at the case dtype), both as lists of tensors on ``device``
    (judging a small case on the GPU is far faster than copying it to the CPU first).

    ``on_host`` (a benchmark-size case, whose float64 reference and temporaries would take many times
    the task's own memory): both come back on the CPU. Where the op treats rows of dim 0 independently
    they are computed on ``device`` a slice of rows at a time; otherwise the Model in the case dtype
    runs whole on ``device`` and the float64 reference on the CPU."""
    import torch

    as_double = [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in case.inputs]
    if not on_host:
        eager = _run(copy.deepcopy(case.model), case.inputs, device)
        return _run(copy.deepcopy(case.model).double(), as_double, device), eager
    if rows_independent(case, device):
        return _run_in_rows(case, device, double=True), _run_in_rows(case, device, double=False)
    eager = [o.cpu() for o in _run(copy.deepcopy(case.model), case.inputs, device)]
    _release(device)
    return _run(copy.deepcopy(case.model).double(), as_double, "cpu"), eager


SLICE_BYTES = 1 << 30  # float64 inputs per slice of rows when a benchmark-size reference is computed in rows
# float64 inputs + outputs per slice of rows when a benchmark-size case is judged streamed (``row_slices``): the
# checks' float64 temporaries are a few times a slice, well inside the verifier's memory budget
STREAM_SLICE_BYTES = 256 << 20
PROBE_ROWS = 4  # rows on which independence along dim 0 is tried: the first half, the second, and both


def _run(model, inputs: list, device: str) -> list:
    import torch

    with torch.no_grad():
        out = model.to(device)(*[x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs])
    items = list(out) if isinstance(out, (tuple, list)) else [out]
    return [torch.as_tensor(o).detach().to(device) for o in items]


def _release(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _rows(inputs: list, start: int, end: int, device: str, double: bool) -> list:
    import torch

    def one(x):
        if not isinstance(x, torch.Tensor):
            return x
        x = x[start:end].to(device)
        return x.double() if double and x.is_floating_point() else x

    return [one(x) for x in inputs]


def rows_independent(case: Case, device: str) -> bool:
    """Whether every tensor input and output has the same length n ≥ 2 along dim 0 and the Model, in
    float64 on its first PROBE_ROWS rows, gives the same as on two halves of them: rows can be sliced."""
    import torch

    tensors = [x for x in case.inputs if isinstance(x, torch.Tensor)]
    if not tensors or any(x.dim() == 0 or x.shape[0] != tensors[0].shape[0] for x in tensors):
        return False
    n = min(tensors[0].shape[0], PROBE_ROWS)
    if n < 2:
        return False
    model = copy.deepcopy(case.model).double().to(device)
    try:
        whole, first, second = [_run(model, _rows(case.inputs, a, b, device, True), device)
                                for a, b in ((0, n), (0, n // 2), (n // 2, n))]
    except Exception:  # noqa: BLE001 -- the task's Model may refuse a short batch: then not sliced
        return False
    if not (len(whole) == len(first) == len(second)):
        return False
    for w, a, b in zip(whole, first, second):
        if w.dim() == 0 or (w.shape[0], a.shape[0], b.shape[0]) != (n, n // 2, n - n // 2):
            return False
        joined = torch.cat([a, b])
        scale = float(w.abs().nan_to_num(0.0, 0.0, 0.0).max()) if w.numel() else 0.0
        if joined.shape != w.shape or not torch.allclose(joined, w, rtol=1e-9, atol=1e-9 * scale, equal_nan=True):
            return False
    return True


def _run_in_rows(case: Case, device: str, *, double: bool) -> list:
    """The Model (in float64 when ``double``) over slices of rows on ``device``, gathered on the CPU."""
    import torch

    model = copy.deepcopy(case.model)
    model = (model.double() if double else model).to(device)
    tensors = [x for x in case.inputs if isinstance(x, torch.Tensor)]
    n = tensors[0].shape[0]
    row_bytes = sum(8 * x[0].numel() for x in tensors)
    step = max(1, SLICE_BYTES // max(1, row_bytes))
    gathered: list = []
    for start in range(0, n, step):
        end = min(n, start + step)
        outs = _run(model, _rows(case.inputs, start, end, device, double), device)
        if not gathered:
            gathered = [torch.empty((n, *o.shape[1:]), dtype=o.dtype) for o in outs]
        for whole, part in zip(gathered, outs):
            whole[start:end] = part.cpu()
        del outs
    del model
    _release(device)
    return gathered


class ModelRaised(Exception):
    """The task's own Model raised on a slice of rows: the op's domain, not the candidate (``__cause__``)."""


def outline(case: Case, device: str) -> list:
    """Shape, dtype and strides of each output of the task's Model in the case dtype at the case's full
    rows, as meta tensors (no memory), from a call on its first PROBE_ROWS rows (enough for
    ``check_structure``; the case's rows must be independent). Raises ``ModelRaised`` as that call does."""
    import torch

    tensors = [x for x in case.inputs if isinstance(x, torch.Tensor)]
    n = tensors[0].shape[0]
    model = copy.deepcopy(case.model)
    first = _model_call(model, _rows(case.inputs, 0, min(n, PROBE_ROWS), device, False), device)
    shaped = [torch.empty_strided((n, *o.shape[1:]), o.stride(), dtype=o.dtype, device="meta") for o in first]
    del first, model
    return shaped


def row_slices(case: Case, device: str, shaped: list):
    """A callable giving, each time it is called, a fresh iterator of ``(first row, end row, [float64
    reference], [task Model in the case dtype])`` computed on ``device`` one slice of rows at a time (the
    case's rows must be independent; ``shaped``: its ``outline``). A slice holds about STREAM_SLICE_BYTES of
    float64 inputs and outputs. A Model that raises on a slice raises ``ModelRaised``."""
    import torch

    tensors = [x for x in case.inputs if isinstance(x, torch.Tensor)]
    n = tensors[0].shape[0]
    row_elements = sum(x[0].numel() for x in tensors) + sum(o[0].numel() for o in shaped)
    step = max(1, STREAM_SLICE_BYTES // max(1, 8 * row_elements))
    reference, eager = copy.deepcopy(case.model).double(), copy.deepcopy(case.model)

    def walk():
        for start in range(0, n, step):
            end = min(n, start + step)
            here = _rows(case.inputs, start, end, device, False)
            eagers = _model_call(eager, here, device)
            as_double = [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in here]
            del here
            refs = _model_call(reference, as_double, device)
            del as_double
            yield start, end, refs, eagers
            del refs, eagers

    return walk


def _model_call(model, inputs: list, device: str) -> list:
    """``_run``, with the Model's own exception (an out-of-memory error excepted: the machine's limit, not the
    op's) raised as ``ModelRaised`` so that no error of the checks around it passes for one."""
    import torch

    try:
        return _run(model, inputs, device)
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:
        raise ModelRaised(f"{type(exc).__name__}: {exc}") from exc


def time_eager(case: Case, device: str) -> float | None:
    """Wall seconds of one call of the task's own Model in the case dtype on ``device``, or None when it
    raises there. The output is dropped at once: nothing the candidate can reach ever holds it."""
    import torch

    model = copy.deepcopy(case.model).to(device)
    inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in case.inputs]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    try:
        if device.startswith("cuda"):  # the first call pays CUDA/cuBLAS initialisation, not the op's time
            _timed_call(model, inputs, sync)
        elapsed = _timed_call(model, inputs, sync)
    except Exception as exc:  # noqa: BLE001 -- a shape outside the op's domain: judged (skipped) later
        if isinstance(exc, torch.OutOfMemoryError):
            raise
        return None
    finally:
        del model, inputs
        _release(device)
    return elapsed


def _timed_call(model, inputs: list, sync) -> float:
    """Wall seconds of one call; its output dropped at once."""
    import torch

    sync()
    started = time.perf_counter()
    with torch.no_grad():
        out = model(*inputs)
    sync()
    elapsed = time.perf_counter() - started
    del out
    return elapsed
