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
"""

from __future__ import annotations

import csv
import inspect
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


def _bucket_key(task: Task, program: Program, knobs: dict[str, int]) -> tuple[int, int]:
    """(rows, cols) of a benchmark shape as the generated launcher sees it (the key of its CONFIGS)."""
    import torch

    from kernelwright.tasks.task import instantiate

    inputs, _ = instantiate(task.load(), knobs)
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    sizes: dict[int, int] = {}
    for spec, t in zip([s for s in program.inputs if s.source == "input"], tensors):
        for j, k in enumerate(spec.dim_map):
            if k is not None:
                sizes[k] = t.shape[j]
    d = program.reduce_dim if program.reduce_dim is not None else program.rank - 1
    cols = sizes.get(d, 1)
    total = math.prod(sizes.get(k, 1) for k in range(program.rank))
    return total // max(cols, 1), cols


class _Run:
    """One optimize invocation: the run directory, the store and the reuse bookkeeping."""

    def __init__(self, out: Path, store: Store, run_id: int, device: str, report: Reporter):
        self.out, self.store, self.run_id, self.device, self.report = out, store, run_id, device, report
        self.counts = {"run": 0, "reused": 0}

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
            return hit.result
        started = time.monotonic()
        result = run()
        data = result.as_json()
        status = ("accepted" if result.accepted else "rejected") if kind == "verify" else ("ok" if result.ok else "failed")
        self.store.add_evaluation(cid, kind, status, data, seconds=time.monotonic() - started, device=self.device,
                                  settings=settings)
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
             verify_shapes: int = VERIFY_SHAPES) -> OptimizeResult:
    """Run the offline agent on ``task``. Raises UsageError (bad input) or OptimizeLimit (not covered)."""
    from kernelwright.bench.bencher import bench
    from kernelwright.verify import verify

    started = time.monotonic()
    parse_agent(agent)
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
            "agent": agent, "device": device, "budget": budget, "dtype": dtype, "program": describe(program),
            "probes": [{"label": label, "config": cfg} for label, cfg, _ in probe_sources],
            "buckets": [{**b, "ranked": b["ranked"][:max(budget, 1)]} for b in buckets]}
    _atomic_write(out_dir / "tuning_plan.json", json.dumps(plan, indent=2))
    store = Store.open(out_dir / "run.sqlite")
    run_id = store.start_run(task=task_obj.name, agent=agent, device=device, config={"budget": budget})
    run = _Run(out_dir, store, run_id, device, report)
    result = OptimizeResult(task=task_obj.name, out=out_dir, device=device, best_path=None, accepted=False, message="")
    try:
        _search(run, task_obj, program, probe_sources, buckets, budget, dtype, device, limits, verify_shapes,
                result, bench, verify)
    finally:
        store.finish_run(run_id, "finished" if result.accepted else "failed")
        result.evaluations = dict(run.counts)
        result.seconds = time.monotonic() - started
        store.close()
    return result


def _search(run: _Run, task: Task, program: Program, probe_sources, buckets, budget, dtype, device, limits,
            verify_shapes, result: OptimizeResult, bench, verify) -> None:
    verify_settings = {"shapes": verify_shapes, "what": "verify"}
    # 2. the kernel family: every code path verified through the probes
    parent = None
    for label, cfg, source in probe_sources:
        cid, path = run.candidate(label, source, role="search", parent=parent, meta={"config": cfg, "probe": True})
        parent = parent or cid
        run.report(f"verifying {label} ({path.parent.name})")
        verdict = run.evaluate("verify", cid, path, verify_settings,
                               lambda: verify(task.path, path, device=device, limits=limits, shapes=verify_shapes))
        if not verdict["accepted"]:
            result.message = (f"the generated kernel failed verification in {label}: {_first_failure(verdict)} "
                              f"(see {path})")
            return
    # 3. tuning rounds: round k gives every bucket its k-th ranked configuration
    timings: dict[int, list[tuple[float, int, dict]]] = {i: [] for i in range(len(buckets))}
    bench_kw = _bench_kwargs(bench, baselines="eager")
    csv_rows: list[dict] = []
    for k in range(budget):
        table = []
        for b in buckets:
            ranked = b["ranked"]
            table.append((tuple(b["key"]), ranked[min(k, len(ranked) - 1)]))
        if k > 0 and all(k >= len(b["ranked"]) for b in buckets):
            break
        label = f"round{k:02d}"
        source = generate(program, table, label=label)
        cid, path = run.candidate(label, source, role="tuner", parent=parent, meta={"round": k, "table": table})
        run.report(f"tuning round {k + 1}/{budget}: benchmarking {len(buckets)} shape bucket(s)")
        settings = {"shapes": [b["knobs"] for b in buckets], "dtype": dtype, "what": "tune", **bench_kw}
        data = run.evaluate("bench", cid, path, settings,
                            lambda: bench(task.path, path, device=device, shapes=[b["knobs"] for b in buckets],
                                          dtype=dtype, limits=limits, **bench_kw))
        failed_knobs = [f.get("knobs") for f in data.get("failures", [])]
        if data.get("failures") and not data.get("rows"):
            run.report(f"  round {k + 1} failed: {data['failures'][0].get('message', '')[:200]}")
            continue
        for i, row in enumerate(data.get("rows", [])):
            ok = row["recheck"]["passed"] and row["knobs"] not in failed_knobs
            csv_rows.append(_csv_row(path.parent.name, label, k, row))
            if ok:
                timings[i].append((row["timings"]["candidate"]["median_ms"], k, table[i][1]))
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


def _bench_kwargs(bench, *, baselines: str) -> dict:
    """Only eager during tuning rounds when the bench module can be told so (per-shape torch.compile
    takes seconds per shape; it is paid once, for best.py)."""
    return {"baseline_kinds": baselines} if "baseline_kinds" in inspect.signature(bench).parameters else {}


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
