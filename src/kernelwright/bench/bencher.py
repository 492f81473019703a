"""``bench``: time a candidate against the task's baselines at benchmark shapes, then re-check its output.

Schema ``kernelwright.bench/1`` (``BenchResult.as_json()``)::

    {"schema": "kernelwright.bench/1", "ok": bool, "task", "candidate", "device",
     "timings_meaningful": bool,            # false under the Triton interpreter (CPU)
     "environment": {...}, "ceilings": {"copy_gbps": float} | null,
     "failures": [{"check", "message", ...}],
     "rows": [{"knobs", "dtype", "bytes", "input_sets",
               "timings": {"candidate"|"candidate_repeat"|"eager": {"median_ms", "q25_ms", "q75_ms",
                                                                     "iqr_ms", "min_ms", "n"}},
               "speedup": {"eager": float},   # baseline median / candidate median
               "fastest_baseline": str, "gbps": float, "fraction_of_copy": float | null,
               "recheck": {"passed": bool, "rel_err": float}}]}
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.bench import roofline
from kernelwright.errors import UsageError
from kernelwright.hardware import describe, resolve_device
from kernelwright.sandbox.runner import Limits, load_result, run_worker
from kernelwright.tasks.knobs import fit_budget
from kernelwright.tasks.task import load_task
from kernelwright.verify import checks, tolerance
from kernelwright.verify.inputs import build_case, reference_outputs

SCHEMA = "kernelwright.bench/1"
CPU_BUDGET = 2**12
BASELINES = ("eager",)


@dataclass
class BenchResult:
    task: str
    candidate: str
    device: str
    environment: dict[str, Any]
    ceilings: dict[str, float] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    log_tail: str = ""
    seconds: float = 0.0

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
                "rows": self.rows, "log_tail": self.log_tail, "seconds": round(self.seconds, 3)}


def speedups(timings: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each baseline's median over the candidate's: above 1 means the candidate is faster."""
    cand = timings["candidate"]["median_ms"]
    return {name: timings[name]["median_ms"] / cand for name in timings
            if name not in ("candidate", "candidate_repeat") and cand > 0}


def bench(task: str | Path, candidate: str | Path, *, device: str = "cuda", shapes: list[dict] | None = None,
          dtype: str | None = None, limits: Limits = Limits(), warmup_ms: float = 25, rep_ms: float = 100) -> BenchResult:
    """Benchmark ``candidate`` at ``shapes`` (default: the task file's own knobs) in ``dtype`` (default: the
    task's first). On CPU the shapes shrink and timings are labelled not meaningful."""
    started = time.monotonic()
    device = resolve_device(device)
    task_obj = load_task(task)
    candidate_path = Path(candidate)
    if not candidate_path.is_file():
        raise UsageError(f"Candidate file {candidate} does not exist; pass a Python file that defines `ModelNew`.")
    dtype = dtype or task_obj.dtype_names[0]
    if dtype not in task_obj.dtype_names:
        raise UsageError(f"Task {task_obj.name} does not list dtype {dtype}; its DTYPES are {', '.join(task_obj.dtype_names)}.")
    shapes = [dict(s) for s in (shapes or [task_obj.knobs])]
    if device == "cpu":
        shapes = [fit_budget(task_obj, s, CPU_BUDGET) for s in shapes]
    result = BenchResult(task_obj.name, str(candidate_path.resolve()), device, describe(device))
    if device.startswith("cuda"):
        from kernelwright.bench.device import profile

        result.ceilings = {"copy_gbps": profile(device).copy_gbps}
    plan = [{"id": f"shape-{i}", "knobs": s, "dtype": dtype, "seeds": [secrets.randbits(31) for _ in range(8)],
             "check_seed": secrets.randbits(31)} for i, s in enumerate(shapes)]
    outcome = run_worker({"mode": "bench", "candidate": str(candidate_path.resolve()), "task": str(task_obj.path),
                          "shapes": plan, "warmup_ms": warmup_ms, "rep_ms": rep_ms}, device=device, limits=limits)
    if not outcome.ok:
        result.failures.append({"check": outcome.reason, "message": outcome.message})
        result.log_tail = outcome.log_tail
        result.seconds = time.monotonic() - started
        return result
    outputs = load_result(outcome) or {}
    module = task_obj.load()
    for spec, row in zip(plan, outcome.report["rows"]):
        check = build_case(module, case_id=spec["id"], label="recheck", knobs=spec["knobs"], dtype=dtype,
                           distribution="task", seed=spec["check_seed"], model_seed=spec["seeds"][0])
        refs, eagers = reference_outputs(check, device)
        outs = outputs.get(spec["id"], [])
        failures = checks.check_structure(outs, eagers)
        stats: list[dict] = []
        if not failures:
            failures, stats = checks.check_values(outs, refs, eagers, tolerance.for_dtype(dtype, atol=task_obj.atol,
                                                                                          rtol=task_obj.rtol))
        for f in failures:
            result.failures.append({**f.as_dict(), "check": "recheck_" + f.check, "knobs": spec["knobs"]})
        nbytes = roofline.minimal_bytes(check.inputs, eagers, check.model.parameters())
        gbps = roofline.achieved_gbps(nbytes, row["timings"]["candidate"]["median_ms"])
        ratio = speedups(row["timings"])
        result.rows.append({
            "knobs": spec["knobs"], "dtype": dtype, "bytes": nbytes, "input_sets": row["input_sets"],
            "timings": row["timings"], "speedup": ratio, "fastest_baseline": min(
                (n for n in row["timings"] if n not in ("candidate", "candidate_repeat")),
                key=lambda n: row["timings"][n]["median_ms"]),
            "gbps": gbps,
            "fraction_of_copy": roofline.fraction_of(gbps, (result.ceilings or {}).get("copy_gbps")),
            "recheck": {"passed": not failures, "rel_err": max((s["rel_err"] for s in stats), default=None)},
        })
    result.seconds = time.monotonic() - started
    return result
