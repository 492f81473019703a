"""Which module (or modeling function) issued each op, with nothing counted twice.

Every module's forward is wrapped in a profiler range named after its class and qualified name, and so is
every plain function of the model's own modeling file (``apply_rotary_pos_emb``, ``repeat_kv``): rotary
embeddings and the like are functions there, not modules. An op belongs to the innermost range around it.
Only *top-level* ops are counted (an ATen op with no other op between it and its range): ``aten::linear``
is one row, not also its ``aten::mm`` and ``aten::t``. Their time is inclusive (CPU) or the sum of the
device kernels launched anywhere beneath them (GPU), so the rows partition the step's op time.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from dataclasses import dataclass, field

MODULE = "kw.module::"
FUNCTION = "kw.function::"
STEP = "kw.step"
# profiler events that are wrappers or bookkeeping, never an op of the model
_WRAPPERS = ("ProfilerStep", "[memory]", "[OutOfMemory]", "Torch-Compiled Region", "## ")


@dataclass
class OpSample:
    """One top-level op call: who issued it, what it was, what it cost."""

    owner_class: str
    owner_name: str
    op: str
    time_us: float
    shapes: list
    dtypes: list
    concrete: list
    flops: int = 0
    kernels: list[str] = field(default_factory=list)


@contextlib.contextmanager
def ranges(net):
    """Profiler ranges around every module's forward and every function of the model's modeling files."""
    import torch

    handles, stack = [], []

    def pre(module, _args, name):
        rf = torch.autograd.profiler.record_function(f"{MODULE}{type(module).__name__}::{name}")
        rf.__enter__()
        stack.append(rf)

    def post(_module, _args, _out):
        if stack:
            stack.pop().__exit__(None, None, None)

    for name, module in net.named_modules():
        handles.append(module.register_forward_pre_hook(functools.partial(pre, name=name or "model")))
        handles.append(module.register_forward_hook(post))
    restore = _wrap_functions(net)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        restore()


def _modeling_modules(net) -> list:
    """The Python modules that define the model's classes (``modeling_qwen3`` and the like)."""
    names = {type(m).__module__ for m in net.modules() if type(m).__module__.startswith("transformers.models.")}
    return [sys.modules[n] for n in sorted(names) if n in sys.modules]


def _wrap_functions(net):
    """Each plain function defined in a modeling file, wrapped in a range (outermost call only: ``rotate_half``
    inside ``apply_rotary_pos_emb`` stays part of the rotary). Returns the undo."""
    import torch

    depth = [0]
    saved = []

    def wrap(fn, label):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            try:
                with torch.autograd.profiler.record_function(label):
                    return fn(*args, **kwargs)
            finally:
                depth[0] -= 1

        return wrapper

    for module in _modeling_modules(net):
        for name, value in list(vars(module).items()):
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                saved.append((module, name, value))
                setattr(module, name, wrap(value, f"{FUNCTION}{name}"))

    def undo():
        for module, name, value in saved:
            setattr(module, name, value)

    return undo


def _owner(event) -> tuple[str, str] | None:
    """(class, name) of the innermost module or function range around ``event``; None outside any step."""
    function = None
    parent = event.cpu_parent
    while parent is not None:
        name = parent.name
        if name.startswith(FUNCTION) and function is None:
            function = name[len(FUNCTION):]
        elif name.startswith(MODULE):
            cls, _, qual = name[len(MODULE):].partition("::")
            return (f"{function}()", f"{qual}.{function}") if function else (cls, qual)
        elif name == STEP:
            return (f"{function}()", function) if function else ("(model)", "")
        parent = parent.cpu_parent
    return None


def _is_range(name: str) -> bool:
    return name.startswith((MODULE, FUNCTION)) or name == STEP or name.startswith(_WRAPPERS)


def _top_level(event) -> bool:
    """An op with only ranges (no other op) between it and its step."""
    if _is_range(event.name) or event.device_type.name != "CPU":
        return False
    parent = event.cpu_parent
    while parent is not None and _is_range(parent.name):
        if parent.name == STEP:
            return True
        parent = parent.cpu_parent
    return False


def _subtree(event):
    yield event
    for child in event.cpu_children:
        yield from _subtree(child)


def samples(events, *, on_gpu: bool) -> list[OpSample]:
    """One sample per top-level op inside a step, attributed to its innermost module or function."""
    out = []
    for event in events:
        if not _top_level(event):
            continue
        owner = _owner(event)
        if owner is None:
            continue
        nodes = list(_subtree(event))
        kernels = [k for node in nodes for k in node.kernels]
        time_us = sum(k.duration for k in kernels) if on_gpu else event.cpu_time_total
        if on_gpu and not kernels:
            continue  # host-side bookkeeping: no device time to attribute
        out.append(OpSample(owner[0], owner[1], event.name, float(time_us), list(event.input_shapes or []),
                            list(getattr(event, "input_dtypes", None) or []),
                            list(getattr(event, "concrete_inputs", None) or []),
                            flops=sum(int(node.flops or 0) for node in nodes), kernels=[k.name for k in kernels]))
    return out + (_direct_kernels(events) if on_gpu else [])


def _direct_kernels(events) -> list[OpSample]:
    """Kernels launched straight from a range with no ATen op around them (a Triton kernel called from
    Python): each is its own op, named after the kernel."""
    out = []
    for event in events:
        if not (event.name.startswith((MODULE, FUNCTION)) or event.name == STEP) or not event.kernels:
            continue
        probe = type("Probe", (), {"cpu_parent": event})()
        owner = _owner(probe)
        if owner is None:
            continue
        for kernel in event.kernels:
            out.append(OpSample(owner[0], owner[1], f"kernel:{kernel.name}", float(kernel.duration), [], [], [],
                                kernels=[kernel.name]))
    return out


def step_time_us(events, *, on_gpu: bool) -> float:
    """The profiled steps' total: every device kernel on a GPU (the device's busy time), the steps' host
    time on the CPU."""
    if on_gpu:
        return float(sum(k.duration for e in events for k in e.kernels))
    return float(sum(e.cpu_time_total for e in events if e.name == STEP))
