"""Worker-side guards for ``verify``: dynamic anti-cheat checks that do not rely on the static pass.

Imported by ``sandbox/worker.py`` in ``run`` mode *before* the candidate is imported. It

* snapshots the identity of every function a timer, a checker or this worker relies on (``time``,
  ``torch`` comparison and copy functions, CUDA events, ``triton.testing``, the worker's own functions)
  and reports any that the candidate replaced (``patched_runtime``);
* installs an audit hook that notices the candidate's own code reading frames or walking the garbage
  collector (``introspection``), the ways to reach tensors it was never given;
* counts Triton launches and calls into compiled extensions, and traces every ATen op forward calls
  with a ``TorchDispatchMode``, so that a candidate that calls PyTorch instead of a kernel is seen
  (``torch_ops``, ``no_kernel``);
* lists threads, so that work deferred to a thread after forward returns is seen (``background_thread``).

Everything here runs in the candidate's process, so a determined candidate could still undo it; the
point is that each guard is independent of the others and of the static pass.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections import Counter
from typing import Any

# (module, attribute path) of every function a cheat could replace to fool timing or checking.
CRITICAL = (
    ("time", "perf_counter"), ("time", "perf_counter_ns"), ("time", "time"), ("time", "time_ns"),
    ("time", "monotonic"), ("time", "monotonic_ns"), ("time", "sleep"), ("time", "process_time"),
    ("torch", "allclose"), ("torch", "equal"), ("torch", "isclose"), ("torch", "isnan"), ("torch", "isfinite"),
    ("torch", "save"), ("torch", "load"), ("torch", "clone"), ("torch", "empty"), ("torch", "empty_like"),
    ("torch", "cuda"), ("torch", "testing"), ("torch", "Tensor"),
    ("torch", "Tensor.clone"), ("torch", "Tensor.to"), ("torch", "Tensor.cpu"), ("torch", "Tensor.copy_"),
    ("torch", "Tensor.detach"), ("torch", "Tensor.__eq__"), ("torch", "Tensor.data_ptr"),
    ("torch", "Tensor.untyped_storage"), ("torch", "Tensor.nan_to_num"), ("torch", "Tensor.stride"),
    ("torch", "Tensor.double"), ("torch", "Tensor.__torch_function__"), ("torch", "Tensor.__torch_dispatch__"),
    ("torch", "nn.Module.__call__"), ("torch", "nn.Module._call_impl"), ("torch", "nn.Module.to"),
    ("torch", "cuda.synchronize"), ("torch", "cuda.Event"), ("torch", "cuda.Event.record"),
    ("torch", "cuda.Event.elapsed_time"), ("torch", "cuda.Event.synchronize"), ("torch", "cuda.current_stream"),
    ("torch", "cuda.Stream.synchronize"),
    ("torch.testing", "assert_close"), ("torch.utils._python_dispatch", "TorchDispatchMode.__enter__"),
    ("torch.utils._python_dispatch", "_get_current_dispatch_mode"),
    ("triton.testing", "do_bench"), ("triton.testing", "do_bench_cudagraph"),
    ("json", "dumps"), ("os", "write"), ("os", "_exit"), ("threading", "enumerate"), ("gc", "collect"),
    ("gc", "get_objects"), ("sys", "addaudithook"), ("builtins", "isinstance"), ("builtins", "type"),
    ("builtins", "len"), ("builtins", "sorted"),
    ("kernelwright.bench.timing", "time_calls"),
)
# Audit events through which code reaches frames or objects it was not handed.
INTROSPECTION_EVENTS = frozenset({"sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers",
                                  "gc.get_referents", "object.__getattr__"})
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"})
# Library frames that read frames on their caller's behalf: the caller is who asked.
HELPER_FILES = ("/inspect.py", "/traceback.py")

# ATen ops that move, view, allocate or describe memory: glue around a kernel, never the computation.
GLUE_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like", "new_zeros",
    "full", "full_like", "new_full", "ones", "ones_like", "fill_", "zero_", "arange",
    "view", "_unsafe_view", "reshape", "as_strided", "expand", "squeeze", "unsqueeze", "transpose", "t",
    "permute", "select", "slice", "narrow", "split", "split_with_sizes", "unbind", "flatten", "unflatten",
    "alias", "detach", "view_as", "movedim", "chunk", "contiguous", "clone", "copy_", "_to_copy", "to",
    "lift_fresh", "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset",
    "is_contiguous", "set_", "resize_", "record_stream",
})
# Op trace budget: non-glue ATen ops over input-sized tensors may read at most this fraction of the
# floating input elements per call (the op itself, or a composite of it, reads all of them).
TORCH_OP_BUDGET = 0.25


class Guards:
    """The state of every guard in this worker; ``violations()`` drains what they saw."""

    def __init__(self, candidate_path: str, worker_module: Any):
        import os

        self.candidate_file = os.path.realpath(candidate_path)
        self._pending: list[dict] = []
        self._in_hook = threading.local()
        self.launches = 0
        self.kernel_depth = 0
        self._patch_launchers()
        self.snapshot = self._take_snapshot(worker_module)
        self.threads = set(threading.enumerate())
        sys.addaudithook(self._audit)

    # --- identities -------------------------------------------------------------------------------------
    def _resolve(self, module: str, path: str):
        owner: Any = importlib.import_module(module)
        parts = path.split(".")
        for part in parts[:-1]:
            owner = getattr(owner, part)
        name = parts[-1]
        if isinstance(owner, type):  # the raw entry in the MRO: classmethods are rebound on every getattr
            for klass in owner.__mro__:
                if name in vars(klass):
                    return vars(klass)[name]
            return None
        return vars(owner).get(name)

    def _take_snapshot(self, worker_module: Any) -> dict[str, Any]:
        snap = {}
        for module, path in CRITICAL:
            try:
                snap[f"{module}.{path}"] = self._resolve(module, path)
            except (ImportError, AttributeError):
                continue
        for name in ("time", "torch", "triton", "triton.testing", "json", "os", "gc", "threading", "builtins"):
            if name in sys.modules:
                snap[f"sys.modules[{name!r}]"] = sys.modules[name]
        main = worker_module or sys.modules.get("__main__")
        for owner in (main, sys.modules[__name__]):
            for name, value in vars(owner).items():
                if callable(value) and getattr(value, "__module__", None) == owner.__name__:
                    snap[f"{owner.__name__}.{name}"] = value
        self._owners = [main, sys.modules[__name__]]
        return snap

    def changed(self) -> list[str]:
        now = {}
        for module, path in CRITICAL:
            try:
                now[f"{module}.{path}"] = self._resolve(module, path)
            except (ImportError, AttributeError):
                now[f"{module}.{path}"] = "<removed>"
        for key in self.snapshot:
            if key.startswith("sys.modules["):
                now[key] = sys.modules.get(key[len("sys.modules['"):-2])
        for owner in self._owners:
            for name, value in vars(owner).items():
                key = f"{owner.__name__}.{name}"
                if key in self.snapshot:
                    now[key] = value
        return [key for key, value in self.snapshot.items() if now.get(key, "<removed>") is not value]

    # --- introspection ----------------------------------------------------------------------------------
    def _audit(self, event: str, args: tuple) -> None:
        if event not in INTROSPECTION_EVENTS or getattr(self._in_hook, "on", False):
            return
        if event == "object.__getattr__" and (len(args) < 2 or args[1] not in FRAME_ATTRIBUTES):
            return
        self._in_hook.on = True
        try:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.endswith(HELPER_FILES):
                frame = frame.f_back
            if frame is not None and _same_file(frame.f_code.co_filename, self.candidate_file):
                detail = f"{event}({args[1]})" if event == "object.__getattr__" else event
                self._pending.append({"check": "introspection", "line": frame.f_lineno,
                                      "message": f"the candidate called {detail} at line {frame.f_lineno}: reading "
                                                 "frames or the garbage collector reaches tensors it was not given"})
        finally:
            self._in_hook.on = False

    # --- kernel launches --------------------------------------------------------------------------------
    def _patch_launchers(self) -> None:
        """Count Triton launches and stop the op trace inside them (the interpreter and the autotuner use
        torch ops of their own); count calls into compiled extensions."""
        guards = self

        def counting(original, count: bool):
            def launch(*args, **kwargs):
                if count:
                    guards.launches += 1
                guards.kernel_depth += 1
                try:
                    return original(*args, **kwargs)
                finally:
                    guards.kernel_depth -= 1
            launch.__wrapped__ = original
            return launch

        try:
            from triton.runtime import autotuner, jit
            jit.JITFunction.run = counting(jit.JITFunction.run, True)
            autotuner.Autotuner.run = counting(autotuner.Autotuner.run, False)
            autotuner.Heuristics.run = counting(autotuner.Heuristics.run, False)
            from triton.runtime import interpreter
            interpreter.InterpretedFunction.run = counting(interpreter.InterpretedFunction.run, True)
        except ImportError:  # no Triton, or an interpreter layout we do not know: launches of it are not counted
            pass
        from torch.utils import cpp_extension

        def counting_loader(original):
            def load(*args, **kwargs):
                module = original(*args, **kwargs)
                for name in dir(module):
                    value = getattr(module, name)
                    if not name.startswith("_") and callable(value) and type(value).__name__ == "builtin_function_or_method":
                        def call(*a, _f=value, **k):
                            guards.launches += 1
                            return _f(*a, **k)
                        setattr(module, name, call)
                return module
            return load

        cpp_extension.load_inline = counting_loader(cpp_extension.load_inline)
        cpp_extension.load = counting_loader(cpp_extension.load)

    def op_trace(self, allowed: frozenset[str], device: str):
        return _OpTrace(self, allowed, device)

    # --- threads ----------------------------------------------------------------------------------------
    def new_threads(self) -> list[str]:
        return [t.name for t in threading.enumerate() if t not in self.threads and t.is_alive()]

    def violations(self) -> list[dict]:
        found, self._pending = self._pending, []
        patched = self.changed()
        if patched:
            found.append({"check": "patched_runtime",
                          "message": f"the candidate replaced {', '.join(patched[:6])}"
                                     + (f" and {len(patched) - 6} more" if len(patched) > 6 else "")
                                     + ": timers, checkers and the verifier must stay as they were"})
        return found


def _same_file(a: str, b: str) -> bool:
    import os

    return a == b or os.path.realpath(a) == b


def _op_trace_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpTrace(TorchDispatchMode):
        def __init__(self, guards: Guards, allowed: frozenset[str], device: str):
            super().__init__()
            self.guards, self.allowed, self.device = guards, allowed, device
            self.big = 1  # set by the caller: half the largest floating input
            self.compute: Counter = Counter()
            self.glue: Counter = Counter()
            self.elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if not self.guards.kernel_depth:
                self._record(func, args, kwargs)
            return func(*args, **kwargs)

        def _record(self, func, args, kwargs) -> None:
            import torch

            name = func.overloadpacket.__name__
            if func.namespace not in ("aten", "prims"):  # the user's own custom op: it launches kernels itself
                self.glue[f"{func.namespace}::{name}"] += 1
                return
            target = kwargs.get("device")
            crosses = target is not None and torch.device(target).type != torch.device(self.device).type
            if name in self.allowed and not crosses:
                self.glue[name] += 1
                return
            self.compute[name] += 1
            sizes = [a.numel() for a in _tensors(args, kwargs)]
            # Only ops over input-sized tensors count: a loss kernel that sums its per-row results in
            # PyTorch touches vectors a row's width smaller than the input; the op itself touches the input.
            if sizes and max(sizes) >= self.big:
                self.elements += sum(sizes)

    return OpTrace


def _tensors(args, kwargs):
    import torch

    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (x for x in a if isinstance(x, torch.Tensor))


_OpTraceClass = None


def _OpTrace(guards, allowed, device):  # noqa: N802 -- builds the mode class on first use (torch is heavy)
    global _OpTraceClass
    if _OpTraceClass is None:
        _OpTraceClass = _op_trace_class()
    return _OpTraceClass(guards, allowed, device)


def live_tensor_bytes(device: str) -> int:
    """Bytes of tensor storage alive in this process (on a GPU: what the caching allocator holds)."""
    import gc

    import torch

    gc.collect(0)  # the youngest generation is enough: the worker's own garbage goes by reference counting
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    seen, total = set(), 0
    tensor = torch.Tensor
    for obj in gc.get_objects():
        if issubclass(type(obj), tensor):  # type(), not isinstance: lazy modules answer __class__ by importing
            try:
                storage = obj.untyped_storage()
            except (RuntimeError, NotImplementedError):
                continue
            if storage.data_ptr() not in seen and obj.device.type != "meta":
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total
