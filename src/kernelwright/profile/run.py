"""``kernelwright profile``: run a model's prefill or decode under torch.profiler over warm steps and rank
its ops by what the model would gain if each ran at the measured roofline."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.run.artifacts import atomic_write
from kernelwright.errors import UsageError
from kernelwright.hardware import describe, resolve_device

PHASES = ("prefill", "decode")
DTYPES = ("bfloat16", "float16", "float32")
SCHEMA = "kernelwright.profile/1"


@dataclass
class ProfileResult:
    model: str
    size: str
    phase: str
    batch: int
    seq: int
    dtype: str
    device: str
    steps: int
    environment: dict[str, Any]
    config: dict[str, Any]
    ceilings: dict[str, Any]
    step_ms: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)  # written: [paths], skipped: {class: why}

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **self.__dict__}


@dataclass(frozen=True)
class TensorArgument:
    shape: tuple[int, ...]
    dtype: str


@dataclass
class FunctionCall:
    """A modeling function as first called in the captured step: the function and its arguments by parameter
    name, in the signature's order, defaults included, each tensor as its shape and dtype."""

    function: Any
    arguments: dict[str, Any]

    @property
    def tensors(self) -> list[str]:
        return [n for n, v in self.arguments.items() if isinstance(v, TensorArgument)]

    @property
    def constants(self) -> dict[str, Any]:
        return {n: v for n, v in self.arguments.items() if not isinstance(v, TensorArgument)}


@dataclass
class Capture:
    """What the leaf modules and the modeling functions saw in one step: per class (or ``name()``), its calls,
    argument shapes, minimal bytes, and a live instance or the function's call (task emission builds from
    them)."""

    calls: dict[str, int] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    signatures: dict[str, list[tuple]] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    instances: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, FunctionCall | None] = field(default_factory=dict)  # None: arguments did not bind


def profile_model(model: str = "qwen3", size: str = "small", *, phase: str = "prefill", batch: int = 1,
                  seq: int | None = None, dtype: str | None = None, device: str = "auto", layers: int | None = None,
                  steps: int | None = None, out: Path | None = None, emit_tasks: Path | None = None, top: int = 10,
                  kernels: list[Path] | None = None, only: set[str] | None = None,
                  progress=None) -> tuple[ProfileResult, Capture]:
    """Profile ``model`` and rank its ops; with ``emit_tasks``, write a task file for each of the ``top``
    memory-bound leaf modules or modeling functions there; with ``kernels`` (repositories written by
    ``kernelwright package``), profile the model kernelized with all of them. Writes profile.json and trace.json
    under ``out`` when given."""
    with warnings.catch_warnings():  # transformers' deprecation FutureWarnings are nothing a user can act on
        warnings.simplefilter("ignore", FutureWarning)
        return _profile(model, size, phase=phase, batch=batch, seq=seq, dtype=dtype, device=device, layers=layers,
                        steps=steps, out=out, emit_tasks=emit_tasks, top=top, kernels=list(kernels or []),
                        only=only, progress=progress or (lambda _msg: None))


def _check(phase: str, batch: int, seq: int | None, dtype: str | None, steps: int | None, top: int) -> None:
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}.")
    if phase not in PHASES:
        raise UsageError(f"--phase must be prefill or decode, not '{phase}'.")
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, not '{dtype}'.")
    for name, value in (("--batch", batch), ("--seq", seq), ("--steps", steps)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}.")


def _profile(model, size, *, phase, batch, seq, dtype, device, layers, steps, out, emit_tasks, top, kernels,
             only, progress):
    import torch

    from kernelwright.package.e2e import PROMPT, _workloads
    from kernelwright.profile.costs import ceilings

    from kernelwright.profile.models import check_model, load_model

    _check(phase, batch, seq, dtype, steps, top)
    check_model(model, size)
    device = resolve_device(device)
    on_gpu = device.startswith("cuda")
    if size == "8b-shape" and not on_gpu:
        raise UsageError("--size 8b-shape needs a GPU; on the CPU profile --size small.")
    if kernels and not on_gpu:  # the packaged Triton kernels run through the interpreter, on before Triton loads
        from kernelwright.package.e2e import _interpret_triton

        _interpret_triton()
    dtype = dtype or ("bfloat16" if on_gpu else "float32")
    progress(f"building {model} on {device} ({dtype})")
    net, config = load_model(model, size, device=device, dtype=getattr(torch, dtype), layers=layers)
    if kernels:
        from kernelwright.profile.swap import kernelize_all

        swapped = kernelize_all(net, kernels, device=device, say=progress)
        if not all(swapped.values()):
            raise UsageError(f"These kernels replaced no module of {model}: "
                             f"{', '.join(k for k, n in swapped.items() if not n)}.")
    seq = seq or PROMPT.get(size, (1, 32))[1]
    steps = steps or (10 if on_gpu else 3)
    environment = describe(device)
    environment["device_name"] = str(environment.get("device_name", "")).replace(", Triton interpreter", "")
    result = ProfileResult(model=model, size=size if _named(model) else "config", phase=phase, batch=batch, seq=seq,
                           dtype=dtype, device=device, steps=steps, environment=environment,
                           config=_jsonable(config), ceilings=ceilings(device, dtype))
    vocab = int(config.get("vocab_size") or 32000)
    prompt = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0)).to(device)
    prefill, decode = _workloads(net, prompt)
    fn = prefill if phase == "prefill" else decode
    progress("warm-up and shape capture")
    for _ in range(2 if on_gpu else 1):
        fn()
    capture = _capture(net, fn)
    progress(f"profiling {steps} {phase} steps")
    prof = _record(net, fn, steps, device)
    _rank(result, _trace_events(prof, out, result), capture, on_gpu)
    _notes(result, on_gpu)
    if kernels:
        result.notes.append(f"Kernelized with {', '.join(str(k) for k in kernels)}"
                            + ("" if on_gpu else " (Triton interpreter: its times mean nothing)") + ".")
    if emit_tasks is not None:
        from kernelwright.profile.tasks import emit_tasks as emit

        emitted = emit(result, capture, emit_tasks, top=top, only=only)
        result.tasks = {"written": [str(p) for p in emitted.written], "skipped": emitted.skipped}
    if out is not None:
        write(result, out)
    return result, capture


def _named(model: str) -> bool:
    from kernelwright.package.e2e import MODELS

    return model in MODELS


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config, default=str))


def _capture(net, fn) -> Capture:
    """One step with hooks on the leaf modules (those with no children) and wrappers around the modeling
    functions (as ``attribute`` ranges them): calls, argument shapes, bytes."""
    from kernelwright.profile.attribute import function_label, wrap_functions

    capture = Capture()
    names = {id(m): n for n, m in net.named_modules()}

    def hook(module, args, kwargs, output):
        cls = type(module).__name__
        capture.instances.setdefault(cls, module)
        capture.names.setdefault(cls, [])
        if len(capture.names[cls]) < 3 and names.get(id(module)) not in capture.names[cls]:
            capture.names[cls].append(names.get(id(module)))
        _count(capture, cls, [*args, *kwargs.values()], output, module.parameters())

    def called(name, function, args, kwargs):
        output = function(*args, **kwargs)
        label = function_label(name)
        bound = _bind(function, args, kwargs)
        if label not in capture.functions:
            capture.functions[label] = None if bound is None else FunctionCall(function, {
                n: TensorArgument(tuple(v.shape), _dtype_name(v)) if _is_tensor(v) else v for n, v in bound.items()})
        # in parameter order, as the task's forward will take them, however the caller passed them
        _count(capture, label, [*args, *kwargs.values()] if bound is None else list(bound.values()), output, ())
        return output

    leaves = [m for m in net.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in leaves]
    restore = wrap_functions(net, called)
    try:
        fn()
    finally:
        restore()
        for h in handles:
            h.remove()
    return capture


def _count(capture: Capture, key: str, arguments: list, output, parameters) -> None:
    """One call of a leaf module or function: its call count, its tensor arguments' signature, its bytes."""
    from kernelwright.bench.roofline import minimal_bytes

    capture.calls[key] = capture.calls.get(key, 0) + 1
    tensors = [a for a in arguments if _is_tensor(a)]
    signature = tuple((tuple(t.shape), _dtype_name(t)) for t in tensors)
    seen = capture.signatures.setdefault(key, [])
    if signature not in seen:
        seen.append(signature)
    outputs = output if isinstance(output, (tuple, list)) else [output]
    capture.bytes[key] = capture.bytes.get(key, 0) + minimal_bytes(tensors, outputs, parameters)


def _bind(function, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """The call's arguments by parameter name, defaults included (None when they do not bind to the
    function's signature)."""
    import inspect

    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


def _is_tensor(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _dtype_name(tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _record(net, fn, steps: int, device: str):
    """The profiler, stopped, over ``steps`` steps, each inside a step range, modules and functions in their own."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from kernelwright.package.e2e import _quiet_profiler
    from kernelwright.profile.attribute import STEP, ranges

    on_gpu = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with ranges(net):
        with _quiet_profiler(profile(activities=activities, record_shapes=True, with_flops=True)) as prof:
            for _ in range(steps):
                with record_function(STEP):
                    fn()
                if on_gpu:
                    torch.cuda.synchronize()
    return prof


def _trace_events(prof, out: Path | None, result: ProfileResult) -> list[dict]:
    """The profiled events, read back from the Chrome trace (``attribute`` says why); kept as out/trace.json."""
    import tempfile

    from kernelwright.profile.attribute import load_trace

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        trace = out / "trace.json"
        prof.export_chrome_trace(str(trace))
        result.files["trace"] = str(trace)
        return load_trace(trace)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        return load_trace(trace)


def _rank(result: ProfileResult, events: list[dict], capture: Capture, on_gpu: bool) -> None:
    from kernelwright.profile import table
    from kernelwright.profile.attribute import samples, step_time_us

    total_us = step_time_us(events, on_gpu=on_gpu)
    result.step_ms = total_us / 1e3 / result.steps
    result.rows = table.rows(samples(events, on_gpu=on_gpu), steps=result.steps, total_us=total_us,
                             ceilings=result.ceilings)
    result.targets = table.targets(result.rows, capture, result.ceilings, result.step_ms)


def _notes(result: ProfileResult, on_gpu: bool) -> None:
    if on_gpu:
        result.notes.append("Time is device (kernel) time; shares are of all kernel time in a step.")
    else:
        result.notes.append("CPU run: times are PyTorch's own ops on the host (no GPU measured); the roofline is "
                            f"this CPU's measured copy bandwidth ({result.ceilings['copy_gbps']:.1f} GB/s) and "
                            f"float32 matmul rate ({result.ceilings['tflops'] * 1e3:.0f} GFLOP/s).")
    result.notes.append("Shares are of the whole step; what they leave is time in no op (Python, hooks, launch gaps).")


def write(result: ProfileResult, out: Path) -> None:
    """profile.json (trace.json, the Chrome trace to open in chrome://tracing or Perfetto, is already beside it)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "profile.json"
    result.files["json"] = str(path)
    atomic_write(path, json.dumps(result.as_json(), indent=2, default=str) + "\n")


def load(path: Path) -> dict[str, Any]:
    """A profile.json written before (``--compare``); a file that is not one is a usage error."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read a profile from {path} ({exc}); pass a profile.json written by "
                         "`kernelwright profile --out DIR`.") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not a kernelwright profile (schema {SCHEMA}); pass a profile.json written by "
                         "`kernelwright profile --out DIR`.")
    return data


def compare_files(before: Path, after: Path) -> dict[str, Any]:
    """Two profile.json files side by side, per (module class, op): ``{"before", "after", "rows"}``."""
    from kernelwright.profile.table import compare

    a, b = load(before), load(after)
    return {"schema": "kernelwright.profile-compare/1", "before": a, "after": b, "rows": compare(a, b)}
