"""``bench``: time a candidate against the task's baselines at benchmark shapes, then re-check its output.

Schema ``kernelwright.bench/1`` (``BenchResult.as_json()``)::

    {"schema": "kernelwright.bench/1", "ok": bool, "task", "candidate", "device",
     "timings_meaningful": bool,            # false under the Triton interpreter (CPU)
     "environment": {...},
     "ceilings": {"copy_gbps", "read_gbps", "matmul_tflops": {"bf16", "fp16", "tf32", "fp32"}} | null,
     "failures": [{"check", "message", ...}],
     "rows": [{"knobs", "dtype", "bytes", "flops", "input_sets",
               "timings": {name: {"median_ms", "q25_ms", "q75_ms", "iqr_ms", "min_ms", "n"}},
                          # names: candidate, candidate_repeat (same kernel, timed again), eager, native,
                          # compile, peer:<name> -- device events, interleaved rounds
               "wall_ms": {name: float | null},   # host clock per call, device-synchronised batches
               "launch_ms": {name: float | null}, # host clock per call until the calls returned
               "graph": {name: Timing | null},    # CUDA-graph replays, for launch-bound sizes only
               "notes": {...},                    # compile_seconds, skipped baselines and why
               "speedup": {baseline: float},      # baseline median / candidate median
               "fastest_baseline": str, "noise": float,   # |candidate - candidate_repeat| / candidate
               "gbps": float, "tflops": float, "fraction_of_copy": float | null,
               "fraction_of_matmul": float | null, "bound": "memory" | "compute" | "launch",
               "recheck": {"passed": bool, "rel_err": float | null}}]}
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.bench import baselines, roofline
from kernelwright.errors import UsageError
from kernelwright.executor.timing import GpuBusy, timing_lock
from kernelwright.hardware import describe, resolve_device
from kernelwright.sandbox.runner import Limits, load_result, run_worker
from kernelwright.tasks.knobs import fit_budget
from kernelwright.tasks.task import candidate_file, Task, load_task
from kernelwright.verify import memory, tolerance
from kernelwright.verify.inputs import build_case
from kernelwright.verify.verifier import HOST_JUDGE_BYTES, judge_outputs

SCHEMA = "kernelwright.bench/1"
CPU_BUDGET = 2**12
CANDIDATES = ("candidate", "candidate_repeat")
# Work outside the timed stream: device-synchronised host time per call this far above both the event
# median and the host's launch time.
WALL_FACTOR, WALL_SLACK_MS = 1.5, 0.01


@dataclass
class BenchResult:
    task: str
    candidate: str
    device: str
    environment: dict[str, Any]
    ceilings: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    log_tail: str = ""
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase: where a slow bench went

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def timings_meaningful(self) -> bool:
        return self.device.startswith("cuda")

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "ok": self.ok, "task": self.task, "candidate": self.candidate,
                "device": self.device, "timings_meaningful": self.timings_meaningful,
                "environment": self.environment, "ceilings": self.ceilings, "failures": self.failures,
                "rows": self.rows, "log_tail": self.log_tail, "seconds": round(self.seconds, 3),
                "phases": {k: round(v, 1) for k, v in self.phases.items()}}


def speedups(timings: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each baseline's median over the candidate's: above 1 means the candidate is faster."""
    cand = timings["candidate"]["median_ms"]
    return {name: timings[name]["median_ms"] / cand for name in timings if name not in CANDIDATES and cand > 0}


def ladder(task: Task, steps: int = 6) -> list[dict[str, int]]:
    """Sizes for a sweep when the task has no SHAPES: the first knob halved from its default."""
    first = next(iter(task.knobs), None)
    if first is None:
        return [{}]
    sizes = sorted({max(1, task.knobs[first] >> i) for i in range(steps)})
    return [{**task.knobs, first: s} for s in sizes]


def sweep_shapes(task: Task) -> list[dict[str, int]]:
    return [dict(s) for s in task.shapes] or ladder(task)


def bench(task: str | Path, candidate: str | Path, *, device: str = "cuda", shapes: list[dict] | None = None,
          dtype: str | None = None, limits: Limits = Limits(), warmup_ms: float = 25, rep_ms: float = 100,
          baseline_kinds: str | None = None, sweep: bool = False, progress=None) -> BenchResult:
    """Benchmark ``candidate`` at ``shapes`` (default: the task file's own knobs; ``sweep``: every shape
    in ``SHAPES`` or a size ladder) in ``dtype`` (default: the task's first). On CPU the shapes shrink
    and timings are labelled not meaningful."""
    started = time.monotonic()
    device = resolve_device(device)
    task_obj = load_task(task)
    candidate_path = candidate_file(candidate)
    dtype = dtype or task_obj.dtype_names[0]
    if dtype not in task_obj.dtype_names:
        raise UsageError(f"Task {task_obj.name} does not list dtype {dtype}; its DTYPES are {', '.join(task_obj.dtype_names)}.")
    kinds = baselines.parse_kinds(baseline_kinds, device)
    shapes = [dict(s) for s in (shapes or (sweep_shapes(task_obj) if sweep else [task_obj.knobs]))]
    if device == "cpu":
        shapes = [fit_budget(task_obj, s, CPU_BUDGET) for s in shapes]
    result = BenchResult(task_obj.name, str(candidate_path.resolve()), device, describe(device))
    try:
        _measure(result, task_obj, candidate_path, device=device, shapes=shapes, dtype=dtype, limits=limits,
                 warmup_ms=warmup_ms, rep_ms=rep_ms, kinds=kinds, progress=progress, started=started)
    except GpuBusy as exc:  # the time budget ran out waiting for the GPU: no verdict on the candidate
        result.failures.append({"check": "timeout", "message": f"not benchmarked: {exc}", "limit": "budget"})
    result.seconds = time.monotonic() - started
    return result


def _measure(result: BenchResult, task_obj: Task, candidate_path: Path, *, device: str, shapes: list[dict], dtype: str,
             limits: Limits, warmup_ms: float, rep_ms: float, kinds, progress, started: float) -> None:
    """Ceilings, the bench worker and the re-check of its outputs, into ``result``."""
    ceilings = None
    if device.startswith("cuda"):
        from kernelwright.bench.device import profile

        with timing_lock(device, deadline=limits.deadline):  # measured ceilings are timings too
            ceilings = profile(device)
        result.ceilings = {"copy_gbps": ceilings.copy_gbps, "read_gbps": ceilings.read_gbps,
                           "matmul_tflops": ceilings.matmul_tflops}
    result.phases["ceilings"] = time.monotonic() - started
    plan = [{"id": f"shape-{i}", "knobs": s, "dtype": dtype, "seeds": [secrets.randbits(31) for _ in range(8)],
             "check_seed": secrets.randbits(31)} for i, s in enumerate(shapes)]
    # no other kernelwright process times on this GPU meanwhile (executor/timing.py)
    with timing_lock(device, deadline=limits.deadline):
        outcome = run_worker({"mode": "bench", "candidate": str(candidate_path.resolve()),
                              "task": str(task_obj.path), "shapes": plan, "warmup_ms": warmup_ms, "rep_ms": rep_ms,
                              "baselines": kinds}, device=device, limits=limits, progress=progress,
                             job_bytes=job_bytes(task_obj, shapes, dtype))
    result.phases["worker"] = time.monotonic() - started - sum(result.phases.values())
    if not outcome.ok:
        limit = {"limit": outcome.extra["timeout_limit"]} if outcome.extra.get("timeout_limit") else {}
        result.failures.append({"check": outcome.reason, "message": outcome.message, **limit})
        result.log_tail = outcome.log_tail
        return
    outputs = load_result(outcome) or {}
    module = task_obj.load()
    # the re-check runs the reference on the GPU: never beside a timing
    with timing_lock(device, shared=True, deadline=limits.deadline):
        for spec, raw in zip(plan, outcome.report["rows"]):
            row = _row(task_obj, module, spec, raw, outputs.pop(spec["id"], []), dtype, device, ceilings)
            result.failures += row.pop("failures")
            result.rows.append(row)
    result.phases["judge"] = time.monotonic() - started - sum(result.phases.values())


def job_bytes(task: Task, shapes: list[dict], dtype: str) -> int:
    """The input bytes the bench worker holds at once at its largest shape (its rotation of input sets),
    from the task's inputs built on the meta device; 0 (the default host limit) when they cannot be."""
    import torch

    from kernelwright.bench.worker_side import rotation_sets
    from kernelwright.tasks.task import instantiate

    size = getattr(torch, dtype).itemsize
    module = task.load()
    largest = 0
    for knobs in shapes:
        try:
            with torch.device("meta"):
                inputs, _ = instantiate(module, {**task.knobs, **knobs})
        except Exception:  # noqa: BLE001 -- an estimate: a task that cannot build on meta keeps the floor
            return 0
        one = sum(x.numel() * (size if x.is_floating_point() else x.element_size())
                  for x in inputs if isinstance(x, torch.Tensor))
        largest = max(largest, one * rotation_sets(one))
    return largest


def _row(task: Task, module, spec: dict, raw: dict, outs: list, dtype: str, device: str, ceilings) -> dict:
    """One shape's numbers: re-check, roofline, ratios, and the flags a suspicious timing raises. ``outs``
    are on the host; the re-check's inputs are drawn on the device, as the worker drew them, and judged as the
    verifier judges a case (a benchmark-size one streamed by rows where the op allows)."""
    check = build_case(module, case_id=spec["id"], label="recheck", knobs=spec["knobs"], dtype=dtype,
                       distribution="task", seed=spec["check_seed"], model_seed=spec["seeds"][0], device=device)
    on_host = memory.tensor_bytes(check.inputs) > HOST_JUDGE_BYTES
    if not on_host:
        outs = [o.to(device) for o in outs]
    failures, stats = judge_outputs(check, outs, tolerance.for_case(dtype, device, atol=task.atol, rtol=task.rtol),
                                    device, on_host)
    found = [{**f.as_dict(), "check": "recheck_" + f.check, "knobs": spec["knobs"]} for f in failures]
    timed = raw["timed"]
    timings = {name: t["events"] for name, t in timed.items()}
    cand_ms = timings["candidate"]["median_ms"]
    wall = {name: t.get("wall_ms") for name, t in timed.items()}
    launch = timed["candidate"].get("launch_ms")
    if device.startswith("cuda") and wall["candidate"] > WALL_FACTOR * max(cand_ms, launch) + WALL_SLACK_MS:
        found.append({"check": "work_outside_timed_stream", "knobs": spec["knobs"],
                      "message": f"the candidate's device-synchronised time per call ({wall['candidate']:.4f} ms) is "
                                 f"far above both its event time ({cand_ms:.4f} ms) and its launch time "
                                 f"({launch:.4f} ms): work escapes the timed stream"})
    out_bytes = memory.output_bytes(check)  # the task's outputs, not the candidate's: those could be anything
    nbytes = roofline.minimal_bytes(check.inputs, [], check.model.parameters()) + (
        roofline.tensor_bytes(outs) if out_bytes is None else out_bytes)
    flops = roofline.count_flops(check.model, check.inputs, device)
    gbps = roofline.achieved_gbps(nbytes, cand_ms)
    tflops = flops / (cand_ms * 1e-3) / 1e12 if cand_ms > 0 else 0.0
    rate = ceilings.matmul_rate(dtype) if ceilings else None
    ratio = speedups(timings)
    return {
        "knobs": spec["knobs"], "dtype": dtype, "bytes": nbytes, "flops": flops, "input_sets": raw["input_sets"],
        "timings": timings, "wall_ms": wall,
        "launch_ms": {n: t.get("launch_ms") for n, t in timed.items()}, "graph": {n: t.get("graph") for n, t in timed.items()},
        "notes": raw["notes"], "speedup": ratio,
        "fastest_baseline": min(ratio, key=lambda n: timings[n]["median_ms"]) if ratio else None,
        "noise": abs(timings["candidate_repeat"]["median_ms"] - cand_ms) / cand_ms if cand_ms else None,
        "gbps": gbps, "tflops": tflops,
        "fraction_of_copy": roofline.fraction_of(gbps, ceilings.copy_gbps if ceilings else None),
        "fraction_of_matmul": roofline.fraction_of(tflops, rate) if flops else None,
        "bound": roofline.bound(nbytes, flops, gbps=ceilings.copy_gbps if ceilings else None, tflops=rate),
        "recheck": {"passed": not failures, "rel_err": max((s["rel_err"] for s in stats), default=None)},
        "failures": found,
    }
