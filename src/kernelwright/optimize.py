"""``optimize``: the main job with the offline agent — capture, generate, verify, tune, keep the best.

A run directory (``--out``) holds::

    tuning_plan.json            the captured program, the shape buckets, probes and ranked variants
    candidates/<id>/kernel.py   every candidate's source (<id> = label + sha256 prefix of the source)
    bench_results.csv           one row per timed (candidate, shape)
    run.sqlite                  runs, candidates (with lineage), verify/bench evaluations (store.py)
    best.py                     the best kernel: dispatches on shape to each bucket's best configuration

Flow: the graph is captured and the kernel generated *before* anything is written, so an operator the
generator does not cover leaves nothing behind. Then the probe candidates (same kernel, configurations
that drive every code path: whole rows, several rows per program, chunked rows, persistent grid) are
verified; on a GPU, each tuning round benchmarks one candidate whose table gives every shape bucket its
next-ranked configuration (one worker per round, all buckets at once; the bench re-checks every output
at the real shape); the best configuration per bucket goes into ``best.py``, which is verified again
and benchmarked against every baseline. On the CPU (Triton interpreter) nothing is tuned by time: each
bucket keeps its prior configuration. Every evaluation is looked up in the store first (by source
sha256, kind, device and settings), so a run killed and started again with the same ``--out`` resumes.

Time budget (``minutes``, default 3): tuning rounds only rank configurations of one kernel, so they
time with less repetition than the final benchmark, and the next round starts only if the time spent so
far, that round (projected as the slowest round so far) and the final verify and benchmark (projected
from the probe verifications and the rounds: :func:`projected_finish`) fit in the budget. The probes,
the final verify and the final benchmark always run: a task whose fixed phases alone exceed the budget
runs over it, with no tuning round. The budget counts this process's time only: a resumed run replays
its finished evaluations from the store at no cost (a cached round always runs) and then has the whole
budget for what is left. ``OptimizeResult.tuning`` and ``tuning_plan.json`` say why tuning stopped.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kernelwright.errors import KernelwrightError, UsageError
from kernelwright.hardware import resolve_device
from kernelwright.sandbox.runner import Limits
from kernelwright.search import variants
from kernelwright.search.capture import Program, Unsupported, capture, describe
from kernelwright.search.codegen import generate
from kernelwright.store import Store, sha256
from kernelwright.tasks.task import Task, load_task

DEFAULT_BUDGET = {"cuda": 10, "cpu": 0}  # tuning rounds (bench evaluations); the CPU tunes nothing by time
DEFAULT_MINUTES = 3.0  # issue 5: one bundled task within 3 minutes on one GPU
# Tuning rounds rank configurations of one kernel against each other: a third of the final benchmark's
# repetition separates them. From the bench's budgets, timing is ~3 s of a 14-s round at full repetition
# (estimated, not measured); the rest is the worker's start, Triton compiles and drawing the inputs, which
# only fewer rounds save. Eager stays: the bench requires one baseline at least, it costs tens
# of milliseconds per shape at this repetition, and bench_results.csv's eager_ms of every round shows
# drift between rounds, which run in separate processes minutes apart. torch.compile is paid once, for
# best.py.
TUNE_BENCH = {"baseline_kinds": "eager", "warmup_ms": 10.0, "rep_ms": 30.0}
# Projections for the time budget, from `optimize` of rmsnorm, softmax, log-softmax and cross-entropy on an
# H200 (2026-11-21, benchmarks/RESULTS.md). The first probe verification pays the cold Triton compile
# (20-32 s on the wide-row tasks against 11-12 s for the second), while best.py's own verification took
# 10-13 s, about the faster probe's: so the faster one stands for a verification. Tuning rounds took 13-16 s
# (rmsnorm) and 36 s (softmax, 128K-wide rows), 1.2-3 faster verifications; the final benchmark against
# every baseline 27-52 s, 1.4-1.9 rounds. With the earlier 2.5 rounds and the slowest probe, softmax
# stopped after one round and log-softmax and cross-entropy before any, at 108-129 s of 180.
ROUND_PER_VERIFY = 1.5
FINAL_PER_ROUND = 1.8
STOP_ROUNDS = "round budget reached"
STOP_EXHAUSTED = "every ranked configuration tried"
STOP_TIME = "time budget"
STOP_CPU = "the CPU tunes nothing by time"
VERIFY_SHAPES = 8
AGENTS = ("offline",)
CSV_FIELDS = ("candidate", "label", "round", "knobs", "dtype", "median_ms", "iqr_ms", "eager_ms", "gbps",
              "fraction_of_copy", "recheck")


class OptimizeLimit(KernelwrightError):
    """The task is outside what this agent can do (exit 1, nothing written)."""


@dataclass
class OptimizeResult:
    task: str
    out: Path
    device: str
    best_path: Path | None
    accepted: bool
    message: str
    buckets: list[dict[str, Any]] = field(default_factory=list)   # bucket knobs, best config, round
    final_rows: list[dict[str, Any]] = field(default_factory=list)  # bench rows of best.py (GPU)
    ceilings: dict[str, Any] | None = None
    evaluations: dict[str, int] = field(default_factory=dict)      # run / reused counts
    seconds: float = 0.0
    tuning: dict[str, Any] = field(default_factory=dict)           # rounds run, why tuning stopped


Reporter = Callable[[str], None]


def default_out(task: Task) -> Path:
    return Path("kernelwright-runs") / task.name


def parse_agent(agent: str) -> str:
    if agent in AGENTS:
        return agent
    if agent.split(":")[0] in ("anthropic", "openai", "openai-compatible"):
        raise UsageError(f"Agent '{agent}' is an LLM agent: the agent team (kernelwright.agents) runs it, "
                         "not the offline search; use `--agent offline` here.")
    raise UsageError(f"Unknown agent '{agent}'; use offline, anthropic:MODEL, openai:MODEL or "
                     "openai-compatible:URL:MODEL.")


def projected_finish(elapsed_s: float, round_s: list[float], verify_s: float) -> float:
    """Seconds from the start at which the run would end if it ran one more tuning round now, then the
    final verify (as long as a warm probe verification, ``verify_s``) and the final benchmark
    (``FINAL_PER_ROUND`` times the slowest round). Before any round: a round is ``ROUND_PER_VERIFY``
    verifications."""
    return elapsed_s + _round_estimate(round_s, verify_s) + projected_final(round_s, verify_s)


def projected_final(round_s: list[float], verify_s: float) -> float:
    """Seconds the final verify and the final benchmark of best.py are projected to take."""
    return verify_s + FINAL_PER_ROUND * _round_estimate(round_s, verify_s)


def _round_estimate(round_s: list[float], verify_s: float) -> float:
    return max(round_s) if round_s else ROUND_PER_VERIFY * verify_s


def time_limit_s(minutes: float | None) -> float | None:
    """The offline agent's time budget in seconds: ``DEFAULT_MINUTES`` when not given, none for 0."""
    if minutes is None:
        minutes = DEFAULT_MINUTES
    if not math.isfinite(minutes) or minutes < 0:
        raise UsageError(f"--max-minutes must be 0 (no time limit) or a positive number of minutes, not {minutes}.")
    return minutes * 60 if minutes > 0 else None


def _bucket_key(task: Task, program: Program, knobs: dict[str, int]) -> tuple[int, int]:
    """(rows, cols) of a benchmark shape as the generated launcher sees it (the key of its CONFIGS)."""
    import torch

    from kernelwright.tasks.task import instantiate

    try:
        with torch.device("meta"):  # shapes only: wide tasks' inputs take seconds to draw on the host
            inputs, _ = instantiate(task.load(), knobs)
    except Exception:  # noqa: BLE001 -- inputs built from data (.item(), numpy): draw them for real
        inputs, _ = instantiate(task.load(), knobs)
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    sizes: dict[int, int] = {}
    for spec, t in zip([s for s in program.inputs if s.source == "input"], tensors):
        for j, k in enumerate(spec.dim_map):
            if k is not None:
                sizes[k] = t.shape[j]
    # the launcher's n_cols: the product of the reduced block of dims (the last dim for pointwise ops)
    reduced = program.reduce_dims or ((program.reduce_dim,) if program.reduce_dim is not None else (program.rank - 1,))
    cols = math.prod(sizes.get(k, 1) for k in reduced)
    total = math.prod(sizes.get(k, 1) for k in range(program.rank))
    return total // max(cols, 1), cols


class _Run:
    """One optimize invocation: the run directory, the store and the reuse bookkeeping."""

    def __init__(self, out: Path, store: Store, run_id: int, device: str, report: Reporter, plan: dict):
        self.out, self.store, self.run_id, self.device, self.report = out, store, run_id, device, report
        self.plan = plan
        self.counts = {"run": 0, "reused": 0}
        self.cost = 0.0  # seconds the last evaluation took when it ran (now, or in the run that stored it)

    def write_plan(self) -> None:
        _atomic_write(self.out / "tuning_plan.json", json.dumps(self.plan, indent=2))

    def cached(self, source: str, kind: str, settings: dict) -> bool:
        return self.store.find_evaluation(sha256(source), kind, self.device, settings) is not None

    def candidate(self, label: str, source: str, *, role: str, parent: int | None, meta: dict) -> tuple[int, Path]:
        digest = sha256(source)
        folder = self.out / "candidates" / f"{label}-{digest[:10]}"
        path = folder / "kernel.py"
        if not path.is_file() or sha256(path.read_text()) != digest:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, source)
        existing = self.store.find_candidate(digest)
        if existing is not None:
            return existing.id, path
        cid = self.store.add_candidate(self.run_id, source_path=str(path.relative_to(self.out)), source=source,
                                       role=role, agent="offline", name=label, parent_id=parent, meta=meta)
        return cid, path

    def evaluate(self, kind: str, cid: int, path: Path, settings: dict, run: Callable[[], Any]) -> dict:
        """A finished evaluation from the store, or run it now and record it (committed at once)."""
        digest = sha256(path.read_text())
        hit = self.store.find_evaluation(digest, kind, self.device, settings)
        if hit is not None:
            self.counts["reused"] += 1
            self.cost = hit.seconds
            return hit.result
        started = time.monotonic()
        result = run()
        data = result.as_json()
        status = ("accepted" if result.accepted else "rejected") if kind == "verify" else ("ok" if result.ok else "failed")
        self.cost = time.monotonic() - started
        self.store.add_evaluation(cid, kind, status, data, seconds=self.cost, device=self.device, settings=settings)
        self.counts["run"] += 1
        return data


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _first_failure(verdict: dict) -> str:
    failures = verdict.get("failures") or []
    if not failures:
        return "rejected"
    f = failures[0]
    return f"{f.get('check')}: {f.get('message')}"


def optimize(task: str | Path, *, agent: str = "offline", budget: int | None = None, out: str | Path | None = None,
             device: str = "auto", limits: Limits = Limits(timeout_s=600), report: Reporter = lambda _: None,
             verify_shapes: int = VERIFY_SHAPES, minutes: float | None = None) -> OptimizeResult:
    """Run the offline agent on ``task``: at most ``budget`` tuning rounds, and no round that would take
    the run past ``minutes`` (default ``DEFAULT_MINUTES``; 0: no time limit). Raises UsageError (bad
    input) or OptimizeLimit (not covered)."""
    from kernelwright.bench.bencher import bench
    from kernelwright.verify import verify

    started = time.monotonic()
    parse_agent(agent)
    limit_s = time_limit_s(minutes)
    device = resolve_device(device)
    task_obj = load_task(task)
    if budget is not None and budget < 0:
        raise UsageError("--budget must be 0 or more (tuning rounds on a GPU).")
    budget = DEFAULT_BUDGET["cpu" if device == "cpu" else "cuda"] if budget is None else budget
    if device == "cpu":
        budget = 0  # the interpreter's timings mean nothing: no tuning by time

    # 1. capture and generate before anything is written: an uncovered op leaves no directory behind
    report(f"capturing {task_obj.name}: Model.forward → ATen graph")
    try:
        program = capture(task_obj)
        kind = program.kind
        probe_list = variants.probes(kind)
        if device == "cpu" and len(probe_list) > 1:
            # interpreter time is precious: best.py (whole rows, its verify below) covers the one-pass path
            probe_list = [p for p in probe_list if p[0] != "probe-one-pass"]
        probe_sources = [(label, cfg, generate(program, [((1, 1), cfg)], label=label)) for label, cfg in probe_list]
    except Unsupported as exc:
        raise OptimizeLimit(
            f"The offline generator does not cover `{exc.op}`{f' ({exc.why})' if exc.why else ''} in task "
            f"{task_obj.name}; an LLM agent (`--agent anthropic:MODEL` or `openai:MODEL`) is the way forward "
            "for this operator.") from None
    shapes = task_obj.bench_shapes
    dtype = task_obj.dtype_names[0]
    buckets = []
    for knobs in shapes:
        key = _bucket_key(task_obj, program, knobs)
        buckets.append({"knobs": knobs, "key": list(key), "ranked": variants.ranked(kind, *key)})

    out_dir = Path(out) if out is not None else default_out(task_obj)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {"schema": "kernelwright.tuning_plan/1", "task": task_obj.name, "task_path": str(task_obj.path),
            "agent": agent, "device": device, "budget": budget, "time_budget_s": limit_s, "dtype": dtype,
            "program": describe(program),
            "probes": [{"label": label, "config": cfg} for label, cfg, _ in probe_sources],
            "buckets": [{**b, "ranked": b["ranked"][:max(budget, 1)]} for b in buckets]}
    _atomic_write(out_dir / "tuning_plan.json", json.dumps(plan, indent=2))
    store = Store.open(out_dir / "run.sqlite")
    run_id = store.start_run(task=task_obj.name, agent=agent, device=device,
                             config={"budget": budget, "time_budget_s": limit_s})
    run = _Run(out_dir, store, run_id, device, report, plan)
    result = OptimizeResult(task=task_obj.name, out=out_dir, device=device, best_path=None, accepted=False, message="")
    try:
        _search(run, task_obj, program, probe_sources, buckets, budget, dtype, device, limits, verify_shapes,
                result, bench, verify, started=started, limit_s=limit_s)
    finally:
        store.finish_run(run_id, "finished" if result.accepted else "failed")
        result.evaluations = dict(run.counts)
        result.seconds = time.monotonic() - started
        store.close()
    return result


def _search(run: _Run, task: Task, program: Program, probe_sources, buckets, budget, dtype, device, limits,
            verify_shapes, result: OptimizeResult, bench, verify, *, started: float, limit_s: float | None) -> None:
    verify_settings = {"shapes": verify_shapes, "what": "verify"}
    # 2. the kernel family: every code path verified through the probes
    parent = None
    verify_costs: list[float] = []
    for label, cfg, source in probe_sources:
        cid, path = run.candidate(label, source, role="search", parent=parent, meta={"config": cfg, "probe": True})
        parent = parent or cid
        run.report(f"verifying {label} ({path.parent.name})")
        verdict = run.evaluate("verify", cid, path, verify_settings,
                               lambda: verify(task.path, path, device=device, limits=limits, shapes=verify_shapes))
        verify_costs.append(run.cost)
        if not verdict["accepted"]:
            result.message = (f"the generated kernel failed verification in {label}: {_first_failure(verdict)} "
                              f"(see {path})")
            return
    # 3. tuning rounds: round k gives every bucket its k-th ranked configuration
    timings: dict[int, list[tuple[float, int, dict]]] = {i: [] for i in range(len(buckets))}
    csv_rows: list[dict] = []
    round_costs: list[float] = []
    verify_s = min(verify_costs, default=0.0)  # the faster probe: the slower one paid the cold compile
    tuning: dict[str, Any] = {"rounds_budget": budget, "rounds_run": 0, "time_budget_s": limit_s,
                              "stopped": STOP_CPU if device == "cpu" else STOP_ROUNDS}
    tuning_started = time.monotonic()
    for k in range(budget):
        table = []
        for b in buckets:
            ranked = b["ranked"]
            table.append((tuple(b["key"]), ranked[min(k, len(ranked) - 1)]))
        if k > 0 and all(k >= len(b["ranked"]) for b in buckets):
            tuning["stopped"] = STOP_EXHAUSTED
            break
        label = f"round{k:02d}"
        source = generate(program, table, label=label)
        settings = {"shapes": [b["knobs"] for b in buckets], "dtype": dtype, "what": "tune", **TUNE_BENCH}
        if limit_s is not None and not run.cached(source, "bench", settings):  # a stored round costs nothing
            end = projected_finish(time.monotonic() - started, round_costs, verify_s)
            if end > limit_s:
                tuning.update(stopped=STOP_TIME, projected_s=round(end, 1))
                run.report(f"time budget: another round, then verifying and benchmarking best.py, would end at "
                           f"~{end:.0f} s of {limit_s:.0f} s")
                break
        cid, path = run.candidate(label, source, role="tuner", parent=parent, meta={"round": k, "table": table})
        run.report(f"tuning round {k + 1}/{budget}: benchmarking {len(buckets)} shape bucket(s)")
        data = run.evaluate("bench", cid, path, settings,
                            lambda: bench(task.path, path, device=device, shapes=[b["knobs"] for b in buckets],
                                          dtype=dtype, limits=limits, **TUNE_BENCH))
        round_costs.append(run.cost)
        tuning["rounds_run"] += 1
        failed_knobs = [f.get("knobs") for f in data.get("failures", [])]
        if data.get("failures") and not data.get("rows"):
            run.report(f"  round {k + 1} failed: {data['failures'][0].get('message', '')[:200]}")
            continue
        for i, row in enumerate(data.get("rows", [])):
            ok = row["recheck"]["passed"] and row["knobs"] not in failed_knobs
            csv_rows.append(_csv_row(path.parent.name, label, k, row))
            if ok:
                timings[i].append((row["timings"]["candidate"]["median_ms"], k, table[i][1]))
    tuning["tuning_s"] = round(time.monotonic() - tuning_started, 1)
    if device != "cpu":  # against result.seconds, this calibrates the projection
        tuning["projected_end_s"] = round(time.monotonic() - started + projected_final(round_costs, verify_s), 1)
    result.tuning = tuning
    run.plan["tuning"] = tuning
    run.write_plan()
    if device != "cpu":
        run.report(f"tuning stopped after {tuning['rounds_run']} of {budget} round(s): {tuning['stopped']}")
    if csv_rows:
        _write_csv(run.out / "bench_results.csv", csv_rows)
    # 4. best per bucket (the prior where nothing was timed), verified and benchmarked in full
    best_table = []
    for i, b in enumerate(buckets):
        if timings[i]:
            ms, k, cfg = min(timings[i], key=lambda t: t[0])
            result.buckets.append({"knobs": b["knobs"], "config": cfg, "round": k, "median_ms": ms})
        else:
            cfg = b["ranked"][0]
            result.buckets.append({"knobs": b["knobs"], "config": cfg, "round": None, "median_ms": None})
        best_table.append((tuple(b["key"]), cfg))
    source = generate(program, best_table, label="best configuration per shape bucket")
    cid, path = run.candidate("best", source, role="search", parent=parent, meta={"table": best_table})
    run.report("verifying best.py")
    verdict = run.evaluate("verify", cid, path, verify_settings,
                           lambda: verify(task.path, path, device=device, limits=limits, shapes=verify_shapes))
    if not verdict["accepted"]:
        result.message = f"the tuned kernel failed verification: {_first_failure(verdict)} (see {path})"
        return
    _atomic_write(run.out / "best.py", source)
    result.best_path = run.out / "best.py"
    result.accepted = True
    result.message = "best.py verified"
    if device.startswith("cuda"):
        run.report("benchmarking best.py against every baseline")
        settings = {"shapes": [b["knobs"] for b in buckets], "dtype": dtype, "what": "final"}
        data = run.evaluate("bench", cid, path, settings,
                            lambda: bench(task.path, path, device=device, shapes=[b["knobs"] for b in buckets],
                                          dtype=dtype, limits=limits))
        result.final_rows = data.get("rows", [])
        result.ceilings = data.get("ceilings")
        csv_rows += [_csv_row(path.parent.name, "best", None, r) for r in result.final_rows]
        _write_csv(run.out / "bench_results.csv", csv_rows)
        if data.get("failures"):
            result.accepted = False
            result.message = f"best.py failed its benchmark re-check: {data['failures'][0].get('message', '')}"


def _csv_row(candidate: str, label: str, k: int | None, row: dict) -> dict:
    t = row["timings"]
    return {"candidate": candidate, "label": label, "round": "" if k is None else k,
            "knobs": json.dumps(row["knobs"], sort_keys=True), "dtype": row["dtype"],
            "median_ms": t["candidate"]["median_ms"], "iqr_ms": t["candidate"]["iqr_ms"],
            "eager_ms": t.get("eager", {}).get("median_ms", ""), "gbps": row.get("gbps"),
            "fraction_of_copy": row.get("fraction_of_copy"), "recheck": row["recheck"]["passed"]}


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Rewritten whole each time (from the store's results on a resumed run): never a half row."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
