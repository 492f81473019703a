"""Which module (or modeling function) issued each op, with nothing counted twice.

Every module's forward is wrapped in a profiler range named after its class and qualified name, and so is
every plain function of the model's own modeling file (``apply_rotary_pos_emb``, ``repeat_kv``): rotary
embeddings and the like are functions there, not modules. An op belongs to the innermost range around it.
Only *top-level* ops are counted (an ATen op with no other op between it and its range): ``aten::linear``
is one row, not also its ``aten::mm`` and ``aten::t``. Their time is inclusive (CPU) or the sum of the
device kernels launched anywhere beneath them (GPU), so the rows partition the step's op time.

The events are read from the profiler's Chrome trace, not from ``prof.events()``: the trace is the
profiler's stable output, and it carries what the ``FunctionEvent`` tree loses on some torch builds (the
input dtypes, absent from ``FunctionEvent`` before torch 2.12, so no op had bytes) or gets wrong (CUPTI's
"Activity Buffer Request" spans, on the host thread there, swallow the ops they overlap). Host spans nest
by time within their thread; a device kernel belongs to the host span whose "External id" it carries,
which is the innermost ATen op (or range) that launched it.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

MODULE = "kw.module::"
FUNCTION = "kw.function::"
STEP = "kw.step"
# profiler events that are wrappers or bookkeeping, never an op of the model
_WRAPPERS = ("ProfilerStep", "[memory]", "[OutOfMemory]", "Torch-Compiled Region", "## ")
# trace categories: host spans (ops, ranges) and device work (what the GPU spent the step on)
_HOST = ("cpu_op", "user_annotation")
_DEVICE = ("kernel", "gpu_memset", "gpu_memcpy")
# ts and dur are each printed to the ns, so a child can seem to end a ns after its parent
_ROUNDING_US = 0.002


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
    kernels: list[str] = field(default_factory=list)
    kernel_us: list[float] = field(default_factory=list)
    step: int = 0


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

    def in_range(name, fn, args, kwargs):
        with torch.autograd.profiler.record_function(f"{FUNCTION}{name}"):
            return fn(*args, **kwargs)

    for name, module in net.named_modules():
        handles.append(module.register_forward_pre_hook(functools.partial(pre, name=name or "model")))
        handles.append(module.register_forward_hook(post))
    restore = wrap_functions(net, in_range)
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


def function_label(name: str) -> str:
    """How a modeling function is named where a module class would be (rows, targets, the capture)."""
    return f"{name}()"


def wrap_functions(net, around):
    """Each plain function defined in a modeling file, wrapped so that ``around(name, fn, args, kwargs)`` makes
    its outermost calls (``rotate_half`` inside ``apply_rotary_pos_emb`` stays part of the rotary). Returns
    the undo."""
    depth = [0]
    saved = []

    def wrap(fn, name):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            try:
                return around(name, fn, args, kwargs)
            finally:
                depth[0] -= 1

        return wrapper

    for module in _modeling_modules(net):
        for name, value in list(vars(module).items()):
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                saved.append((module, name, value))
                setattr(module, name, wrap(value, name))

    def undo():
        for module, name, value in saved:
            setattr(module, name, value)

    return undo


@dataclass(eq=False)
class Span:
    """A host-side span of the trace (an ATen op or a range), its place in the tree and its device work."""

    name: str
    ts: float
    end: float
    is_op: bool
    args: dict
    parent: Span | None = None
    kernels: list[tuple[str, float]] = field(default_factory=list)
    children: list[Span] = field(default_factory=list)


def load_trace(path: Path) -> list[dict]:
    """The events of a Chrome trace written by ``prof.export_chrome_trace``."""
    data = json.loads(Path(path).read_text())
    return data["traceEvents"] if isinstance(data, dict) else data


def spans(trace_events: list[dict]) -> list[Span]:
    """Every host span, nested by time within its thread, each with the device work it launched itself."""
    threads: dict[tuple, list[Span]] = defaultdict(list)
    by_id: dict[int, Span] = {}
    for event in trace_events:
        if event.get("ph") != "X" or event.get("cat") not in _HOST:
            continue
        args = event.get("args") or {}
        ts = float(event["ts"])
        span = Span(event["name"], ts, ts + float(event.get("dur", 0.0)), event["cat"] == "cpu_op", args)
        threads[(event.get("pid"), event.get("tid"))].append(span)
        if "External id" in args:
            by_id[args["External id"]] = span
    for thread in threads.values():
        _nest(thread)
    for event in trace_events:
        if event.get("ph") == "X" and event.get("cat") in _DEVICE:
            launcher = by_id.get((event.get("args") or {}).get("External id"))
            if launcher is not None:
                launcher.kernels.append((event["name"], float(event.get("dur", 0.0))))
    return [span for thread in threads.values() for span in thread]


def _nest(thread: list[Span]) -> None:
    thread.sort(key=lambda s: (s.ts, -s.end))
    open_spans: list[Span] = []
    for span in thread:
        while open_spans and (span.ts >= open_spans[-1].end or span.end > open_spans[-1].end + _ROUNDING_US):
            open_spans.pop()
        if open_spans:
            span.parent = open_spans[-1]
            open_spans[-1].children.append(span)
        open_spans.append(span)


def _is_range(span: Span) -> bool:
    return not span.is_op or span.name.startswith(_WRAPPERS)


def _place(parent: Span | None) -> tuple[str, str, Span] | None:
    """(owner class, owner name, step) for work directly under ``parent`` with only ranges up to its step:
    the innermost module or function range is the owner. None inside another op or outside any step."""
    function = owner = None
    while parent is not None:
        if parent.name == STEP:
            owner = owner or ((function_label(function), function) if function else ("(model)", ""))
            return (*owner, parent)
        if not _is_range(parent):
            return None
        if owner is None and parent.name.startswith(FUNCTION) and function is None:
            function = parent.name[len(FUNCTION):]
        elif owner is None and parent.name.startswith(MODULE):
            cls, _, qual = parent.name[len(MODULE):].partition("::")
            owner = (function_label(function), f"{qual}.{function}") if function else (cls, qual)
        parent = parent.parent
    return None


def _subtree(span: Span):
    yield span
    for child in span.children:
        yield from _subtree(child)


def _concrete(value):
    """A recorded argument as Python (``"[-1]"`` -> ``[-1]``, ``"True"`` -> ``True``); ``""`` (a tensor, None) -> None."""
    if not isinstance(value, str):
        return value
    if not value:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def samples(trace_events: list[dict], *, on_gpu: bool) -> list[OpSample]:
    """One sample per top-level op inside a step, attributed to its innermost module or function, with the
    shapes, dtypes and arguments of that op (the one the user's code called), whichever child launched the
    kernels; and one per kernel launched straight from a range."""
    all_spans = spans(trace_events)
    steps = {id(s): i for i, s in enumerate(sorted((s for s in all_spans if s.name == STEP), key=lambda s: s.ts))}
    out = []
    for span in all_spans:
        if _is_range(span):
            out.extend(_direct_kernels(span, steps) if on_gpu else [])
            continue
        place = _place(span.parent)
        if place is None:
            continue
        kernels = [k for node in _subtree(span) for k in node.kernels]
        if on_gpu and not kernels:
            continue  # host-side bookkeeping: no device time to attribute
        args = span.args
        out.append(OpSample(place[0], place[1], span.name,
                            sum(us for _, us in kernels) if on_gpu else span.end - span.ts,
                            list(args.get("Input Dims") or []), list(args.get("Input type") or []),
                            [_concrete(v) for v in args.get("Concrete Inputs") or []],
                            kernels=[name for name, _ in kernels], kernel_us=[us for _, us in kernels],
                            step=steps[id(place[2])]))
    return out


def _direct_kernels(span: Span, steps: dict[int, int]) -> list[OpSample]:
    """Kernels launched straight from a range with no ATen op around them (a Triton kernel called from
    Python): each is its own op, named after the kernel."""
    place = _place(span) if span.kernels else None
    if place is None:
        return []
    return [OpSample(place[0], place[1], f"kernel:{name}", us, [], [], [], kernels=[name], kernel_us=[us],
                     step=steps[id(place[2])]) for name, us in span.kernels]


def step_time_us(trace_events: list[dict], *, on_gpu: bool) -> float:
    """The profiled steps' total: all device work on a GPU (the device's busy time), the steps' host time
    on the CPU."""
    if on_gpu:
        return float(sum(e.get("dur", 0.0) for e in trace_events if e.get("ph") == "X" and e.get("cat") in _DEVICE))
    return float(sum(e.get("dur", 0.0) for e in trace_events
                     if e.get("ph") == "X" and e.get("cat") in _HOST and e.get("name") == STEP))
