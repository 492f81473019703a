"""The child side of the process boundary: the only module that imports and runs candidate code.

Invoked as ``python -m kernelwright.sandbox.worker SCRATCH DEVICE REPORT_FD`` by ``runner.py``. It reads
the parent's nonce from stdin before anything else runs, sets ``TRITON_INTERPRET`` for CPU runs before
Triton can be imported, loads ``job.pt`` from SCRATCH, does what the job asks, saves tensors to
``result.pt`` and writes one JSON line (with the nonce) to REPORT_FD.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main() -> None:
    scratch, device, report_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nonce = sys.stdin.readline().strip()
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    channel = os.fdopen(report_fd, "w")

    def report(payload: dict) -> None:
        channel.write(json.dumps({**payload, "nonce": nonce}) + "\n")
        channel.flush()

    try:
        payload = _run(scratch, device)
    except CandidateError as exc:
        payload = {"status": "error", "reason": exc.reason, "message": exc.message, "traceback": exc.tb}
    except BaseException as exc:  # noqa: BLE001 -- every way a candidate can fail becomes a report
        reason, message = classify(exc)
        payload = {"status": "error", "reason": reason, "message": message, "traceback": _tb(exc)}
    report(payload)
    channel.close()
    sys.stdout.flush()
    # Skip interpreter teardown: a candidate's atexit hooks and CUDA context teardown are not our result.
    os._exit(0)


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


def _run(scratch: str, device: str) -> dict:
    import torch

    job = torch.load(os.path.join(scratch, "job.pt"), weights_only=False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True  # torch.empty* returns NaN, not stale data
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    from kernelwright.bench.worker_side import run_bench  # bound before the candidate is imported

    model_new_cls = _load_candidate(job["candidate"])
    if job["mode"] == "run":
        return _run_cases(job, model_new_cls, device, scratch)
    if job["mode"] == "bench":
        return run_bench(job, model_new_cls, _build_model, device, scratch)
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


def _run_cases(job: dict, model_new_cls, device: str, scratch: str) -> dict:
    import torch

    results, saved = [], {}
    for case in job["cases"]:
        try:
            results.append(_run_case(case, model_new_cls, device, saved))
        except CandidateError:
            raise
        except BaseException as exc:  # noqa: BLE001
            reason, message = classify(exc)
            results.append({"id": case["id"], "error": {"reason": reason, "message": message, "traceback": _tb(exc)}})
            if reason.startswith("cuda") or reason == "exit_called":
                break  # the CUDA context is gone; later cases cannot run
    torch.save(saved, os.path.join(scratch, "result.pt"))
    return {"status": "ok", "cases": results, "torch": torch.__version__}


def _run_case(case: dict, model_new_cls, device: str, saved: dict) -> dict:
    """Run ModelNew on clones of the case's inputs, ``repeat`` times, poisoning memory before each run."""
    import torch

    model, note = _build_model(model_new_cls, case, device)
    originals = [x.to(device) if isinstance(x, torch.Tensor) else x for x in case["inputs"]]
    input_bytes = sum(x.numel() * x.element_size() for x in originals if isinstance(x, torch.Tensor))
    runs, mutated, meta = [], set(), []
    for _ in range(case.get("repeat", 1)):
        clones = [x.clone() if isinstance(x, torch.Tensor) else x for x in originals]
        _poison_device_memory(device, 4 * input_bytes + (64 << 20))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        with torch.no_grad():
            out = model(*clones)
        if device.startswith("cuda"):
            torch.cuda.synchronize()  # the whole device: side streams included
        outputs = _outputs_as_list(out)
        runs.append([o.detach().to("cpu", copy=True) for o in outputs])
        meta = [dict(shape=list(o.shape), dtype=str(o.dtype).removeprefix("torch."), device=str(o.device),
                     stride=list(o.stride()), storage_offset=o.storage_offset()) for o in outputs]
        mutated |= {i for i, (a, b) in enumerate(zip(originals, clones))
                    if isinstance(a, torch.Tensor) and not torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))}
    saved[case["id"]] = runs
    return {"id": case["id"], "outputs": meta, "mutated_inputs": sorted(mutated), "note": note}


if __name__ == "__main__":
    main()
