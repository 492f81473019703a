"""The child side of the process boundary: the only module that imports and runs candidate code.

Invoked as ``python -m kernelwright.sandbox.worker SCRATCH DEVICE REPORT_FD ALIVE_FD`` by ``runner.py``.
It starts watching ALIVE_FD (EOF: the parent is gone, so this process group kills itself), reads the
parent's nonce from stdin before anything else runs, sets ``TRITON_INTERPRET`` for CPU runs before
Triton can be imported, loads ``job.pt`` from SCRATCH, does what the job asks, saves tensors to
``result.pt`` and writes one JSON line (with the nonce) to REPORT_FD. Before that line come progress
events (``build``/``call``/``done``, also with the nonce) from which the parent enforces per-call deadlines.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from kernelwright.sandbox.reaper import watch_parent

# Bound before any candidate code is imported: a candidate that patches json or os must not see the nonce.
_dumps = json.dumps
_write = os.write


def main() -> None:
    scratch, device, report_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 4:
        watch_parent(int(sys.argv[4]))  # before the guards snapshot the threads: this one is ours
    nonce = sys.stdin.readline().strip()
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    report = _channel(report_fd, nonce)

    def event(kind: str, case: str, call: int | None = None) -> None:
        report({"event": kind, "case": case, **({} if call is None else {"call": call})})

    try:
        payload = _run(scratch, device, event)
    except CandidateError as exc:
        payload = {"status": "error", "reason": exc.reason, "message": exc.message, "traceback": exc.tb}
    except BaseException as exc:  # noqa: BLE001 -- every way a candidate can fail becomes a report
        reason, message = classify(exc)
        payload = {"status": "error", "reason": reason, "message": message, "traceback": _tb(exc)}
    report(payload)
    os.close(report_fd)
    sys.stdout.flush()
    # Skip interpreter teardown: a candidate's atexit hooks and CUDA context teardown are not our result.
    os._exit(0)


def _channel(fd: int, nonce: str):
    """A writer of nonce-carrying JSON lines. The nonce is spliced in as text, never handed to json."""
    head = '{"nonce": "%s"' % nonce

    def send(fields: dict) -> None:
        body = _dumps(fields)
        data = (head + (", " + body[1:] if body != "{}" else "}") + "\n").encode()
        while data:
            data = data[_write(fd, data):]

    return send


class CandidateError(Exception):
    def __init__(self, reason: str, message: str, tb: str = ""):
        super().__init__(message)
        self.reason, self.message, self.tb = reason, message, tb


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]


def classify(exc: BaseException) -> tuple[str, str]:
    """Name the way a candidate failed from the exception it raised."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "illegal memory access" in lowered or "misaligned address" in lowered or "out of bounds" in lowered and "cuda" in lowered:
        return "cuda_illegal_address", "a CUDA illegal memory access: " + text[:500]
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in lowered:
        return "out_of_memory", "the candidate ran out of device memory: " + text[:500]
    if "cuda error" in lowered or "cudaerror" in lowered or "device-side assert" in lowered:
        return "cuda_error", "a CUDA error: " + text[:500]
    module = type(exc).__module__ or ""
    if module.startswith("triton") and ("Compilation" in type(exc).__name__ or "compile" in lowered):
        return "compile_error", "the Triton kernel failed to compile: " + text[:500]
    if isinstance(exc, SystemExit):
        return "exit_called", f"the candidate called exit ({exc.code})"
    return "exception", text[:800]


def _run(scratch: str, device: str, event) -> dict:
    import torch

    job = torch.load(os.path.join(scratch, "job.pt"), weights_only=False)
    # Verification poisons uninitialised memory (torch.empty* returns NaN, not stale data) so unwritten
    # outputs show. Timing must not: the fill is an extra pass over every output the candidate allocates.
    poison = job["mode"] == "run"
    torch.use_deterministic_algorithms(poison, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = poison
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    from kernelwright.bench.worker_side import run_bench  # bound before the candidate is imported

    if job["mode"] == "run":
        from kernelwright.verify.guard import Guards  # before the candidate: it snapshots what must not change

        guards = Guards(job["candidate"], sys.modules[__name__])
        draw = _drawer(job, device)  # bound before the candidate is imported, like the guards
        model_new_cls = _load_candidate(job["candidate"])
        _raise_violations(guards, "importing the candidate")
        return _run_cases(job, model_new_cls, device, scratch, guards, event, draw)
    if job["mode"] == "naive":
        from kernelwright.verify.naive_side import run_naive

        return run_naive(job, _load_candidate(job["candidate"]), device, scratch)
    model_new_cls = _load_candidate(job["candidate"])
    if job["mode"] == "bench":
        return run_bench(job, model_new_cls, _build_model, device, scratch, event=event)
    raise CandidateError("internal", f"unknown job mode {job['mode']!r}")


def _load_candidate(path: str):
    from kernelwright.tasks.task import import_file
    from pathlib import Path

    try:
        module = import_file(Path(path), prefix="kw_candidate")
    except SyntaxError as exc:
        raise CandidateError("syntax_error", f"the candidate does not parse: line {exc.lineno}: {exc.msg}") from None
    except BaseException as exc:
        reason, message = classify(exc)
        raise CandidateError("import_error" if reason == "exception" else reason,
                             "importing the candidate failed: " + message, _tb(exc)) from None
    cls = getattr(module, "ModelNew", None)
    if cls is None:
        raise CandidateError("missing_modelnew", "the candidate does not define `class ModelNew(nn.Module)`")
    return cls


def _build_model(model_new_cls, case: dict, device: str):
    """Construct ModelNew like Model was built, in the case's dtype, with Model's parameters loaded."""
    import torch

    torch.manual_seed(case["seed"])
    try:
        model = model_new_cls(*case["init_inputs"])
    except TypeError as exc:
        raise CandidateError("bad_signature", f"ModelNew(*get_init_inputs()) failed: {exc}", _tb(exc)) from None
    if not isinstance(model, torch.nn.Module):
        raise CandidateError("bad_signature", "ModelNew is not an nn.Module")
    model = model.to(device=device, dtype=getattr(torch, case["dtype"]))
    note = ""
    state = case.get("state_dict") or {}
    if state:
        try:
            model.load_state_dict(state)
        except RuntimeError:
            note = "ModelNew's parameters do not match Model's names; they were initialised from the same seed instead"
    return model.eval(), note


POOL_FACTOR_SMALL, POOL_FACTOR_LARGE = 4, 1
POOL_CAP = 1 << 30  # past it, the pool grows only as the inputs do


def poison_pool_bytes(input_bytes: int) -> int:
    """How much memory to NaN-fill before a call: room for outputs and workspace four times the inputs on
    small cases, up to a 1-GiB pool, then one input's worth. torch.empty* is NaN-filled anyway (fill_uninitialized_memory);
    the pool is the second line, for blocks the allocator hands out otherwise. On an H200 a 4x pool made the
    worker's peak 6x a 8.6-GB task's bytes (KernelBench 49_Max) and a 2x pool 4.25x (47-53: the outputs' early
    copies, the previous call's outputs and the drawing's temporaries come on top of inputs + clones + pool),
    so past 1 GiB the pool is one input's worth."""
    # never smaller for larger inputs
    return max(POOL_FACTOR_LARGE * input_bytes, min(POOL_FACTOR_SMALL * input_bytes, POOL_CAP)) + (64 << 20)


def _poison_device_memory(device: str, nbytes: int) -> None:
    """Fill memory the caching allocator will hand out next with NaN, so unwritten outputs show."""
    import torch

    if device.startswith("cuda"):
        pool = torch.empty(max(nbytes, 1 << 20) // 4, dtype=torch.float32, device=device).fill_(float("nan"))
        del pool


def _outputs_as_list(out) -> list:
    import torch

    items = list(out) if isinstance(out, (tuple, list)) else [out]
    for i, item in enumerate(items):
        if type(item) is not torch.Tensor:
            kind = "a tensor subclass" if isinstance(item, torch.Tensor) else type(item).__name__
            raise CandidateError("bad_output_type", f"output {i} is {kind}, not a plain torch.Tensor")
    return items


def _raise_violations(guards, when: str) -> None:
    """Guards that make the whole run untrustworthy (patched runtime, introspection) end it at once."""
    found = guards.violations()
    if found:
        raise CandidateError(found[0]["check"], f"{when}: " + "; ".join(v["message"] for v in found[:3]))


MIN_TRACED_ELEMENTS = 4096


def _drawer(job: dict, device: str):
    """A function drawing an input set from its ``build_case`` arguments on ``device`` (the parent drew the
    same tensors from the same seed), or None when the job carries every input set."""
    def drawn(item) -> bool:
        return isinstance(item, dict)

    if not any(drawn(c["inputs"]) or any(map(drawn, c.get("variants", []))) for c in job["cases"]):
        return None
    from kernelwright.tasks.task import import_file
    from kernelwright.verify.inputs import build_case

    import torch

    module = import_file(Path(job["task"]), prefix="kw_task")
    gpus = [torch.device(device).index or 0] if device.startswith("cuda") else []

    def draw(spec: dict) -> list:
        # build_case seeds the RNGs: in a forked state, so a candidate drawing random numbers in forward still
        # differs between its repeated calls (the determinism check) as it would with loaded inputs
        with torch.random.fork_rng(devices=gpus):
            return build_case(module, **spec, device=device).inputs

    return draw


def _run_cases(job: dict, model_new_cls, device: str, scratch: str, guards, event, draw=None) -> dict:
    import torch

    from kernelwright.verify.guard import GLUE_OPS, TORCH_OP_BUDGET

    allowed = frozenset(GLUE_OPS | set(job.get("allowed_ops", ())))
    budget = job.get("torch_op_budget", TORCH_OP_BUDGET)
    results, saved = [], {}
    for case in job["cases"]:
        try:
            results.append(_run_case(case, model_new_cls, device, saved, guards, allowed, budget, event, draw))
        except CandidateError:
            raise
        except BaseException as exc:  # noqa: BLE001
            event("done", case["id"])  # the call that raised has returned: its deadline ends here
            reason, message = classify(exc)
            results.append({"id": case["id"], "error": {"reason": reason, "message": message, "traceback": _tb(exc)}})
            if reason.startswith("cuda") or reason == "exit_called":
                break  # the CUDA context is gone; later cases cannot run
    torch.save(saved, os.path.join(scratch, "result.pt"))
    # the verifier records its own peak GPU memory beside the worker's (None on the CPU: not measured)
    peak = int(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else None
    return {"status": "ok", "cases": results, "torch": torch.__version__, "peak_bytes": peak}


def _run_case(case: dict, model_new_cls, device: str, saved: dict, guards, allowed, budget: float, event,
              draw=None) -> dict:
    """Run ModelNew on clones of the case's inputs ``repeat`` times, then on each variant input set (same
    shape, other values), poisoning memory before each call and checking each call as it returns. An input
    set given as ``build_case`` arguments is drawn on the device by ``draw`` right before its call (one set
    of a benchmark-size case in memory at a time)."""
    import torch

    from kernelwright.verify.guard import live_tensor_bytes

    event("build", case["id"])
    model, note = _build_model(model_new_cls, case, device)
    event("done", case["id"])
    _raise_violations(guards, "building ModelNew")
    input_sets = [case["inputs"]] * case.get("repeat", 1) + list(case.get("variants", []))
    runs, mutated, metas, violations = [], set(), [], {}
    ops, glue, launches = {}, {}, 0
    previous: list = []  # the last call's outputs, kept alive: new outputs in that memory were reused
    held_bytes = 0
    baseline = None

    def flag(check: str, message: str, call: int) -> None:
        violations.setdefault(check, {"check": check, "message": message, "call": call})

    for call, inputs in enumerate(input_sets):
        originals = draw(inputs) if isinstance(inputs, dict) else [x.to(device) if isinstance(x, torch.Tensor) else x
                                                                   for x in inputs]
        input_bytes = sum(x.numel() * x.element_size() for x in originals if isinstance(x, torch.Tensor))
        float_elements = sum(x.numel() for x in originals if isinstance(x, torch.Tensor) and x.is_floating_point())
        clones = [x.clone() if isinstance(x, torch.Tensor) else x for x in originals]
        _poison_device_memory(device, poison_pool_bytes(input_bytes))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        launched = guards.launches
        trace = guards.op_trace(allowed, device)
        trace.big = max([x.numel() // 2 for x in originals if isinstance(x, torch.Tensor) and x.is_floating_point()] or [1])
        event("call", case["id"], call)
        with torch.no_grad(), trace:
            out = model(*clones)
        outputs = _outputs_as_list(out)
        # Stream-ordered copies, before any device-wide sync: work a candidate left on a side stream or in
        # a thread is still running now, so these differ from what the outputs hold after the sync.
        early = [o.detach().clone() for o in outputs]
        if device.startswith("cuda"):
            torch.cuda.synchronize()  # the whole device: side streams included; a hung kernel hangs here
        event("done", case["id"], call)
        threads = guards.new_threads()
        if threads:
            flag("background_thread", f"forward returned with thread(s) {threads[:3]} still running: work "
                                      "deferred to a thread is not timed and may not be finished", call)
        late = [i for i, (a, b) in enumerate(zip(early, outputs)) if not _bitwise_equal(a, b)]
        if late:
            flag("unsynchronised_work", f"output(s) {late} changed after forward returned (read on the current "
                                        "stream, then again after a device-wide sync): work left on a side "
                                        "stream or in a thread", call)
        if guards.launches == launched:
            flag("no_kernel", "forward launched no Triton kernel and called no compiled extension: the result "
                              "came from PyTorch, not from a kernel", call)
        # Tiny inputs are exempt: a per-row tail (a loss's mean) is then as large as the input itself, and a
        # composite cheat is caught on every larger shape anyway.
        if float_elements >= MIN_TRACED_ELEMENTS and trace.elements > budget * float_elements:
            names = ", ".join(f"{k}×{v}" for k, v in trace.compute.most_common(8))
            flag("torch_ops", f"forward computed with PyTorch ops ({names}) over {trace.elements} elements "
                              f"({trace.elements / max(float_elements, 1):.0%} of the input; at most "
                              f"{budget:.0%} may go through non-glue ops; a task may list more in "
                              "ALLOWED_TORCH_OPS)", call)
        for name, n in trace.compute.items():
            ops[name] = ops.get(name, 0) + n
        for name, n in trace.glue.items():
            glue[name] = glue.get(name, 0) + n
        launches += guards.launches - launched
        old = {_storage_key(o) for o in previous}
        if any(_storage_key(o) in old for o in outputs):
            flag("output_reused", "an output lives in the memory an earlier call returned (still held by the "
                                  "caller): results are cached or buffers reused across calls", call)
        for v in guards.violations():
            flag(v["check"], v["message"], call)
        runs.append([o.detach().to("cpu", copy=True) for o in outputs])
        held_bytes += sum(r.untyped_storage().nbytes() for r in runs[-1])
        metas.append(_describe_outputs(outputs))
        mutated |= {i for i, (a, b) in enumerate(zip(originals, clones))
                    if isinstance(a, torch.Tensor) and not _bitwise_equal(a, b)}
        previous = outputs
        del out, early, clones, originals, trace
        if case.get("probe") and call in (0, len(input_sets) - 1):
            # A result cache grows with every new input set; a workspace is allocated once, at the first call.
            live = live_tensor_bytes(device) - (0 if device.startswith("cuda") else held_bytes)
            if baseline is None:
                baseline = live
            elif live - baseline > sum(o.untyped_storage().nbytes() for o in outputs) // 2:
                flag("state_retained", f"ModelNew holds {live - baseline} more bytes of tensors after {call} "
                                       "more call(s) on new inputs: it keeps results or inputs across calls", call)
    saved[case["id"]] = runs
    return {"id": case["id"], "outputs": metas[0], "calls": metas, "mutated_inputs": sorted(mutated), "note": note,
            "violations": list(violations.values()), "torch_ops": ops, "glue_ops": glue, "launches": launches}


COMPARE_CHUNK = 1 << 24  # elements compared at once: NaN-aware copies of a whole 8-GB input would be a third input


def _bitwise_equal(a, b) -> bool:
    """Same shape and values, NaN where the other has NaN; compared slice by slice, so that checking a
    multi-GB input for mutation allocates a few tens of MB and not two more copies of it."""
    import torch

    if a.shape != b.shape:
        return False
    if a.dtype != b.dtype or not (a.is_contiguous() and b.is_contiguous()):
        return torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) and torch.equal(a.isnan(), b.isnan())
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    for start in range(0, flat_a.numel(), COMPARE_CHUNK):
        x, y = flat_a[start:start + COMPARE_CHUNK], flat_b[start:start + COMPARE_CHUNK]
        if torch.equal(x, y):  # no copy; false whenever a NaN is there, then the NaN-aware form decides
            continue
        if not (torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)) and torch.equal(x.isnan(), y.isnan())):
            return False
    return True


def _storage_key(t):
    return (t.device.type, t.untyped_storage().data_ptr()) if t.numel() else None


def _describe_outputs(outputs: list) -> list[dict]:
    """Shape, dtype, device, strides, and whether the output's memory overlaps itself or another output."""
    import torch

    spans = []
    for o in outputs:
        if o.numel() == 0:
            spans.append(None)
            continue
        start = o.data_ptr()
        extent = sum((size - 1) * abs(stride) for size, stride in zip(o.shape, o.stride())) + 1
        spans.append((o.device, o.untyped_storage().data_ptr(), start, start + extent * o.element_size()))
    metas = []
    for i, o in enumerate(outputs):
        overlaps = [j for j, other in enumerate(spans) if j != i and other and spans[i] and other[:2] == spans[i][:2]
                    and other[2] < spans[i][3] and spans[i][2] < other[3]]
        metas.append(dict(shape=list(o.shape), dtype=str(o.dtype).removeprefix("torch."), device=str(o.device),
                          stride=list(o.stride()), storage_offset=o.storage_offset(),
                          internal_overlap=bool(o.numel() and torch._debug_has_internal_overlap(o) == 1),
                          overlaps=overlaps))
    return metas


if __name__ == "__main__":
    main()
