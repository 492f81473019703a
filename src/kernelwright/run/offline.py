"""The offline agent on the run layer: capture, generate, verify, tune, keep the best — within a time budget.

Flow: the graph is captured and the kernel generated *before* anything is written, so an operator the
generator does not cover leaves nothing behind. Then the probe candidates (same kernel, configurations
that drive every code path) are verified on the verifier's small drawn shapes only; on a GPU, each
tuning round benchmarks one candidate whose table gives every shape bucket its next-ranked
configuration (one worker per round, all buckets at once; the bench re-checks every output at the real
shape); the best configuration per bucket goes into ``best.py``, which is verified once more, now with
the benchmark shape too, and benchmarked against every baseline. On the CPU (Triton interpreter)
nothing is tuned by time. Every evaluation goes through the ledger, so a killed run resumes.

Time budget (``minutes``, default 3; :class:`Clock`): the run ends within the budget plus a 10 % margin.
Before every phase the rest of the run is projected (the probes still to verify, the tuning round, the
final verify and the final benchmark: :func:`projected_finish`), and the phase is cut when it would not
fit: the remaining probes are skipped, tuning stops, the final benchmark runs with fewer repetitions or
fewer shapes. Every worker's timeout is at most what the budget has left plus the margin, so one slow
verification cannot blow it. On the CPU the verifications draw fewer shapes when the budget is short.
What the budget cut is listed in the verdict. A resumed run replays its finished evaluations from the
store at no cost and then has the whole budget for what is left.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from kernelwright.errors import KernelwrightError, UsageError
from kernelwright.run.artifacts import RunDir, bench_csv_rows
from kernelwright.run.ledger import Ledger
from kernelwright.run.result import OptimizeResult, Reporter
from kernelwright.run.verdict import judge
from kernelwright.sandbox.runner import Limits
from kernelwright.search import variants
from kernelwright.search.capture import Program, Unsupported, capture, describe
from kernelwright.search.codegen import generate
from kernelwright.tasks.task import Task

DEFAULT_BUDGET = {"cuda": 10, "cpu": 0}  # tuning rounds (bench evaluations); the CPU tunes nothing by time
DEFAULT_MINUTES = 3.0  # issue 5: one bundled task within 3 minutes on one GPU
MARGIN = 0.10  # the run may end this fraction past its budget, never later: the workers' timeouts hold it
MIN_TIMEOUT_S = 5.0
# Tuning rounds rank configurations of one kernel against each other: a third of the final benchmark's
# repetition separates them. Eager stays: the bench requires one baseline at least, it costs tens of
# milliseconds per shape at this repetition, and bench_results.csv's eager rows of every round show drift
# between rounds. torch.compile is paid once, for best.py.
TUNE_BENCH = {"baseline_kinds": "eager", "warmup_ms": 10.0, "rep_ms": 30.0}
FULL_BENCH = {"warmup_ms": 25.0, "rep_ms": 100.0}
SHORT_BENCH = {"warmup_ms": 5.0, "rep_ms": 20.0}  # the final bench when the full one would not fit
# Projections, from `optimize` on an H200 (2026-11-21, benchmarks/RESULTS.md): tuning rounds took 1.2-3
# warm verifications and the final benchmark against every baseline 1.4-1.9 rounds. The probes verify
# small shapes only since issue 11; best.py's verification adds the benchmark shape, projected as one more
# round (a round draws inputs and re-checks outputs at every benchmark shape). Not yet re-measured.
ROUND_PER_VERIFY = 1.5
FINAL_PER_ROUND = 1.8
STOP_ROUNDS = "round budget reached"
STOP_EXHAUSTED = "every ranked configuration tried"
STOP_TIME = "time budget"
STOP_CPU = "the CPU tunes nothing by time"
VERIFY_SHAPES = 8
MIN_CPU_SHAPES = 2  # fewer drawn shapes than this and a probe is skipped instead


class OptimizeLimit(KernelwrightError):
    """The task is outside what this agent can do (exit 1, nothing written)."""


def time_limit_s(minutes: float | None) -> float | None:
    """The time budget in seconds: ``DEFAULT_MINUTES`` when not given, none for 0."""
    if minutes is None:
        minutes = DEFAULT_MINUTES
    if not math.isfinite(minutes) or minutes < 0:
        raise UsageError(f"--max-minutes must be 0 (no time limit) or a positive number of minutes, not {minutes}.")
    return minutes * 60 if minutes > 0 else None


def _round_estimate(round_s: list[float], verify_s: float) -> float:
    return max(round_s) if round_s else ROUND_PER_VERIFY * verify_s


def projected_final(round_s: list[float], verify_s: float, *, on_gpu: bool = True) -> float:
    """Seconds best.py's verification (a probe's plus the benchmark shape's, on a GPU) and its final
    benchmark (``FINAL_PER_ROUND`` times the slowest round) are projected to take. The CPU has neither
    a benchmark shape nor a benchmark."""
    if not on_gpu:
        return verify_s
    round_est = _round_estimate(round_s, verify_s)
    return verify_s + round_est + FINAL_PER_ROUND * round_est


def projected_finish(elapsed_s: float, round_s: list[float], verify_s: float, *, probes_left: int = 0,
                     rounds: int = 1, on_gpu: bool = True) -> float:
    """Seconds from the start at which the run would end after ``probes_left`` more probe verifications
    and ``rounds`` more tuning rounds, then the final verify and benchmark."""
    rounds_s = rounds * _round_estimate(round_s, verify_s) if on_gpu else 0.0
    return elapsed_s + probes_left * verify_s + rounds_s + projected_final(round_s, verify_s, on_gpu=on_gpu)


@dataclass
class Clock:
    """The run's time budget: seconds since the start, what is left, and the workers' timeouts."""

    started: float
    limit_s: float | None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return math.inf if self.limit_s is None else self.limit_s - self.elapsed()

    def fits(self, end_s: float) -> bool:
        return self.limit_s is None or end_s <= self.limit_s

    def limits(self, base: Limits, keep_s: float = 0.0) -> Limits:
        """``base`` with its timeout cut to what is left (less ``keep_s`` held for later phases) plus the
        margin: a worker that would run past the budget is stopped."""
        if self.limit_s is None:
            return base
        allowed = max(MIN_TIMEOUT_S, self.left() - keep_s + MARGIN * self.limit_s)
        return replace(base, timeout_s=min(base.timeout_s, allowed)) if allowed < base.timeout_s else base


def cut_by_budget(result: dict[str, Any], limits: Limits, base: Limits) -> bool:
    """The worker was stopped by a timeout the budget shortened: no verdict on the candidate."""
    return limits.timeout_s < base.timeout_s and any(f.get("check") == "timeout" for f in result.get("failures", []))


def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn`` with the keyword arguments it accepts (``progress`` and ``benchmark_shape`` are newer than
    some verifiers; test doubles take fewer)."""
    params = inspect.signature(fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def _accepts(fn: Callable, name: str) -> bool:
    return name in inspect.signature(fn).parameters


def _probes(kind: str, device: str) -> list[tuple[str, dict]]:
    """The generator's probe configurations; those the interpreter runs quickly on a CPU."""
    return variants.probes(kind, device="cpu" if device == "cpu" else "cuda")


def _accurate(table: list[tuple[tuple, dict]], kind: str) -> list[tuple[tuple, dict]] | None:
    """The table with every configuration in its accurate-reduction form, or None when nothing changes."""
    changed = [(key, variants.accurate(cfg, kind) or cfg) for key, cfg in table]
    return changed if changed != table else None


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


def _first_failure(verdict: dict) -> str:
    failures = verdict.get("failures") or []
    if not failures:
        return "rejected"
    f = failures[0]
    return f"{f.get('check')}: {f.get('message')}"


@dataclass
class Prepared:
    """What capture and generation made, before anything is written."""

    task: Task
    program: Program
    probes: list[tuple[str, dict, str]]
    buckets: list[dict[str, Any]]
    dtype: str


def prepare(task: Task, device: str) -> Prepared:
    """Capture and generate; an operator the generator does not cover is an ``OptimizeLimit``."""
    try:
        program = capture(task)
        probe_sources = [(label, cfg, generate(program, [((1, 1), cfg)], label=label))
                         for label, cfg in _probes(program.kind, device)]
    except Unsupported as exc:
        raise OptimizeLimit(
            f"The offline generator does not cover `{exc.op}`{f' ({exc.why})' if exc.why else ''} in task "
            f"{task.name}; an LLM agent (`--agent anthropic:MODEL` or `openai:MODEL`) is the way forward "
            "for this operator.") from None
    buckets = []
    for knobs in task.bench_shapes:
        key = _bucket_key(task, program, knobs)
        buckets.append({"knobs": knobs, "key": list(key), "ranked": variants.ranked(program.kind, *key)})
    return Prepared(task, program, probe_sources, buckets, task.dtype_names[0])


class OfflineRun:
    """One run of the offline agent on an open ledger."""

    def __init__(self, prep: Prepared, ledger: Ledger, result: OptimizeResult, *, budget: int, clock: Clock,
                 limits: Limits, verify_shapes: int, report: Reporter, plan: dict):
        self.prep, self.ledger, self.result, self.budget, self.clock = prep, ledger, result, budget, clock
        self.base_limits, self.verify_shapes, self.report, self.plan = limits, verify_shapes, report, plan
        self.device = ledger.device
        self.on_gpu = self.device != "cpu"
        self.cuts: list[str] = []
        self.verify_costs: list[float] = []
        self.round_costs: list[float] = []
        self.per_shape_s: float | None = None  # CPU: seconds a verification spent per drawn shape
        self.csv_rows: list[dict] = []
        self.parent: int | None = None
        self.accurate = False  # a probe failed on accuracy only: every configuration in its accurate form

    # -- evaluations --------------------------------------------------------------------------------

    def _verify(self, name: str, source: str, *, role: str, meta: dict, shapes: int, benchmark_shape: bool,
                keep_s: float = 0.0) -> dict:
        from kernelwright import verify as verify_pkg

        cid, path = self.ledger.candidate(name, source, role=role, parent=self.parent, meta=meta,
                                          folder=_folder(name, source))
        self.parent = self.parent or cid
        limits = self.clock.limits(self.base_limits, keep_s)
        settings = self._verify_settings(shapes, benchmark_shape)
        self.report(f"verifying {name} ({path.parent.name}, {shapes} drawn shape(s)"
                    f"{' + the benchmark shape' if settings['benchmark_shape'] else ''})")
        outcome = self.ledger.evaluate(
            "verify", cid, source, settings,
            lambda: _call(verify_pkg.verify, self.prep.task.path, path, device=self.device, limits=limits,
                          shapes=shapes, benchmark_shape=benchmark_shape, progress=self.report).as_json(),
            report=None if _accepts(verify_pkg.verify, "progress") else self.report,  # its own heartbeat, or ours
            what=f"verifying {name}", keep=lambda r: not cut_by_budget(r, limits, self.base_limits))
        self.verify_costs.append(outcome.seconds)
        if not self.on_gpu and shapes:
            self.per_shape_s = outcome.seconds / shapes
        return {**outcome.result, "_path": path, "_cut": cut_by_budget(outcome.result, limits, self.base_limits)}

    def _bench(self, name: str, source: str, *, role: str, meta: dict, shapes: list[dict], what: str,
               options: dict, keep_s: float = 0.0) -> tuple[dict, int, Path, bool]:
        from kernelwright.bench import bencher

        cid, path = self.ledger.candidate(name, source, role=role, parent=self.parent, meta=meta,
                                          folder=_folder(name, source))
        limits = self.clock.limits(self.base_limits, keep_s)
        settings = {"shapes": shapes, "dtype": self.prep.dtype, "what": what, **options}
        outcome = self.ledger.evaluate(
            "bench", cid, source, settings,
            lambda: bencher.bench(self.prep.task.path, path, device=self.device, shapes=shapes, dtype=self.prep.dtype,
                                  limits=limits, **options).as_json(),
            report=self.report, what=f"benchmarking {name}",
            keep=lambda r: not cut_by_budget(r, limits, self.base_limits))
        return outcome.result, cid, path, cut_by_budget(outcome.result, limits, self.base_limits)

    def _verify_settings(self, shapes: int, benchmark_shape: bool) -> dict:
        return {"shapes": shapes, "what": "verify", "benchmark_shape": benchmark_shape and self.on_gpu}

    def _on_record(self, source: str, kind: str, settings: dict) -> bool:
        """A finished evaluation the store holds: replaying it costs nothing, so the budget never cuts it."""
        return self.ledger.lookup_quietly(source, kind, settings) is not None

    # -- phases -------------------------------------------------------------------------------------

    def verify_s(self) -> float:
        """A warm verification: the faster one so far (the first pays the cold compile)."""
        return min(self.verify_costs, default=0.0)

    def cpu_shapes(self, pending: int) -> int:
        """Drawn shapes for the next CPU verification: what its share of the budget left allows."""
        if self.on_gpu or self.per_shape_s is None or self.clock.limit_s is None:
            return self.verify_shapes
        share = max(0.0, self.clock.left()) / max(1, pending)
        return max(0, min(self.verify_shapes, int(share / max(self.per_shape_s, 1e-9))))

    def probes(self) -> bool:
        """Verify every code path (the probes), on small shapes; False when one is rejected."""
        probes = self.prep.probes
        for i, (label, cfg, source) in enumerate(probes):
            left = len(probes) - i
            shapes = self.cpu_shapes(pending=left + 1)
            if self._on_record(source, "verify", self._verify_settings(self.verify_shapes, False)):
                shapes = self.verify_shapes
            elif self.verify_costs and (shapes < MIN_CPU_SHAPES or not self.clock.fits(projected_finish(
                    self.clock.elapsed(), [], self.verify_s(), probes_left=left, rounds=0, on_gpu=self.on_gpu))):
                skipped = ", ".join(p[0] for p in probes[i:])
                self.cuts.append(f"probe verification ({skipped} not verified)")
                self.report(f"time budget: skipping probe(s) {skipped}; best.py is still verified")
                return True
            verdict = self._verify(label, source, role="search", meta={"config": cfg, "probe": True},
                                   shapes=shapes or self.verify_shapes, benchmark_shape=False,
                                   keep_s=projected_final([], self.verify_s(), on_gpu=self.on_gpu))
            if shapes < self.verify_shapes:
                self.cuts.append(f"{label} verified on {shapes} of {self.verify_shapes} drawn shapes")
            if not verdict["accepted"] and _accuracy_only(verdict) and not self.accurate:
                verdict = self._retry_accurate(label, cfg, shapes or self.verify_shapes, verdict)
            if not verdict["accepted"]:
                why = "the time budget ran out while verifying it" if verdict["_cut"] else _first_failure(verdict)
                self.result.message = f"the generated kernel failed verification in {label}: {why} (see {verdict['_path']})"
                if verdict["_cut"]:
                    self.cuts.append(f"the verification of {label}")
                return False
        return True

    def _retry_accurate(self, label: str, cfg: dict, shapes: int, rejected: dict) -> dict:
        """A probe that failed on accuracy only, again with accurate reductions; when that passes, every
        configuration of the run takes the accurate form."""
        kind = self.prep.program.kind
        accurate = variants.accurate(cfg, kind)
        if accurate is None:
            return rejected
        self.report(f"{label} failed on accuracy only: trying accurate reductions")
        source = generate(self.prep.program, [((1, 1), accurate)], label=f"{label}-accurate")
        verdict = self._verify(f"{label}-accurate", source, role="search", meta={"config": accurate, "probe": True},
                               shapes=shapes, benchmark_shape=False,
                               keep_s=projected_final([], self.verify_s(), on_gpu=self.on_gpu))
        if verdict["accepted"]:
            self.accurate = True
            for b in self.prep.buckets:
                b["ranked"] = [variants.accurate(c, kind) or c for c in b["ranked"]]
        return verdict

    def tune(self) -> dict[int, list[tuple[float, int, dict]]]:
        """Round k gives every bucket its k-th ranked configuration; each round is one bench."""
        buckets, program = self.prep.buckets, self.prep.program
        timings: dict[int, list[tuple[float, int, dict]]] = {i: [] for i in range(len(buckets))}
        tuning: dict[str, Any] = {"rounds_budget": self.budget, "rounds_run": 0, "time_budget_s": self.clock.limit_s,
                                  "stopped": STOP_ROUNDS if self.on_gpu else STOP_CPU}
        started = time.monotonic()
        shapes = [b["knobs"] for b in buckets]
        for k in range(self.budget):
            if k > 0 and all(k >= len(b["ranked"]) for b in buckets):
                tuning["stopped"] = STOP_EXHAUSTED
                break
            table = [(tuple(b["key"]), b["ranked"][min(k, len(b["ranked"]) - 1)]) for b in buckets]
            label = f"round{k:02d}"
            source = generate(program, table, label=label)
            settings = {"shapes": shapes, "dtype": self.prep.dtype, "what": "tune", **TUNE_BENCH}
            if self.ledger.lookup_quietly(source, "bench", settings) is None:  # a stored round costs nothing
                end = projected_finish(self.clock.elapsed(), self.round_costs, self.verify_s())
                if not self.clock.fits(end):
                    tuning.update(stopped=STOP_TIME, projected_s=round(end, 1))
                    self.report(f"time budget: another round, then verifying and benchmarking best.py, would end "
                                f"at ~{end:.0f} s of {self.clock.limit_s:.0f} s")
                    if k == 0:
                        self.cuts.append("tuning (no round fitted)")
                    break
            self.report(f"tuning round {k + 1}/{self.budget}: benchmarking {len(buckets)} shape bucket(s)")
            data, cid, path, cut = self._bench(
                label, source, role="tuner", meta={"round": k, "table": table}, shapes=shapes, what="tune",
                options=TUNE_BENCH, keep_s=projected_final(self.round_costs, self.verify_s()))
            self.round_costs.append(self.ledger.last_seconds)
            tuning["rounds_run"] += 1
            if cut:
                tuning["stopped"] = STOP_TIME
                self.cuts.append(f"tuning round {k + 1} (stopped at its timeout)")
                break
            self.csv_rows += bench_csv_rows(data, candidate=path.parent.name, candidate_id=cid, role="tuner", round=k)
            if data.get("failures") and not data.get("rows"):
                self.report(f"  round {k + 1} failed: {data['failures'][0].get('message', '')[:200]}")
                continue
            failed = [f.get("knobs") for f in data.get("failures", [])]
            for i, row in enumerate(data.get("rows", [])):
                if row["recheck"]["passed"] and row["knobs"] not in failed:
                    timings[i].append((row["timings"]["candidate"]["median_ms"], k, table[i][1]))
        tuning["tuning_s"] = round(time.monotonic() - started, 1)
        if self.on_gpu:  # against result.seconds, this calibrates the projection
            tuning["projected_end_s"] = round(self.clock.elapsed() + projected_final(self.round_costs, self.verify_s()), 1)
            self.report(f"tuning stopped after {tuning['rounds_run']} of {self.budget} round(s): {tuning['stopped']}")
        self.result.tuning = tuning
        return timings

    def best_table(self, timings: dict[int, list[tuple[float, int, dict]]]) -> list[tuple[tuple, dict]]:
        """The fastest configuration per bucket (the prior where nothing was timed)."""
        table = []
        for i, b in enumerate(self.prep.buckets):
            if timings[i]:
                ms, k, cfg = min(timings[i], key=lambda t: t[0])
                self.result.buckets.append({"knobs": b["knobs"], "config": cfg, "round": k, "median_ms": ms})
            else:
                cfg = b["ranked"][0]
                self.result.buckets.append({"knobs": b["knobs"], "config": cfg, "round": None, "median_ms": None})
            table.append((tuple(b["key"]), cfg))
        return table

    def verify_best(self, table: list[tuple[tuple, dict]]) -> tuple[str, dict] | None:
        """best.py verified once with the benchmark shape; an accuracy-only failure tries the accurate
        reductions. Returns (source, meta) of the accepted kernel, or None."""
        source = generate(self.prep.program, table, label="best configuration per shape bucket")
        shapes = max(MIN_CPU_SHAPES, self.cpu_shapes(pending=1))
        if shapes < self.verify_shapes:
            self.cuts.append(f"best.py verified on {shapes} of {self.verify_shapes} drawn shapes")
        final_bench_s = FINAL_PER_ROUND * _round_estimate(self.round_costs, self.verify_s()) if self.on_gpu else 0.0
        verdict = self._verify("best", source, role="search", meta={"table": table}, shapes=shapes,
                               benchmark_shape=True, keep_s=final_bench_s)
        accurate = None if self.accurate else _accurate(table, self.prep.program.kind)
        if not verdict["accepted"] and accurate and _accuracy_only(verdict):
            self.report("best.py failed on accuracy only: trying the accurate reductions")
            source = generate(self.prep.program, accurate, label="best configuration per shape bucket, accurate")
            verdict = self._verify("best-accurate", source, role="search", meta={"table": accurate, "accurate": True},
                                   shapes=shapes, benchmark_shape=True, keep_s=final_bench_s)
            for b, (_, cfg) in zip(self.result.buckets, accurate):
                b["config"] = cfg
        if verdict["accepted"]:
            return source, verdict
        if verdict["_cut"]:
            self.cuts.append("the verification of best.py (stopped at its timeout)")
            self.result.message = (f"the time budget ran out while verifying best.py (see {verdict['_path']}); "
                                   "a larger --max-minutes gives it the time")
        else:
            self.result.message = f"the tuned kernel failed verification: {_first_failure(verdict)} (see {verdict['_path']})"
        return None

    def final_bench(self, source: str) -> tuple[dict | None, str | None]:
        """best.py against every baseline, cut to fewer repetitions or shapes when the full bench would
        not fit. Returns (bench JSON, why untimed)."""
        shapes = [b["knobs"] for b in self.prep.buckets]
        options = dict(FULL_BENCH)
        full_settings = {"shapes": shapes, "dtype": self.prep.dtype, "what": "final", **options}
        if self.clock.limit_s is not None and not self._on_record(source, "bench", full_settings):
            full = FINAL_PER_ROUND * _round_estimate(self.round_costs, self.verify_s())
            left = self.clock.left()
            if left + MARGIN * self.clock.limit_s < MIN_TIMEOUT_S:
                self.cuts.append("the final benchmark (no time left)")
                return None, "untimed: the time budget ran out before the final benchmark"
            if full > left:
                options = dict(SHORT_BENCH)
                keep = max(1, math.floor(len(shapes) * max(0.0, left) / full)) if full > 2 * max(left, 0.0) else len(shapes)
                cut = "the final benchmark's repetitions"
                if keep < len(shapes):
                    cut += f" and shapes ({keep} of {len(shapes)} timed)"
                    shapes = shapes[:keep]
                self.cuts.append(cut)
                self.report(f"time budget: {cut} cut to fit")
        self.report("benchmarking best.py against every baseline")
        data, cid, path, cut = self._bench("best", source, role="search", meta={}, shapes=shapes, what="final",
                                           options=options)
        if cut:
            self.cuts.append("the final benchmark (stopped at its timeout)")
            return None, "untimed: the time budget ran out during the final benchmark"
        self.csv_rows += bench_csv_rows(data, candidate=path.parent.name, candidate_id=cid, role="search")
        return data, None

    def run(self) -> None:
        if not self.probes():
            return
        timings = self.tune()
        self.plan["tuning"] = self.result.tuning
        self.ledger.dir.write_json("tuning_plan.json", self.plan)
        if self.csv_rows:
            self.ledger.dir.write_bench_csv(self.csv_rows)
        found = self.verify_best(self.best_table(timings))
        if found is None:
            return
        source, _ = found
        self.result.best_path = self.ledger.dir.write_best(source)
        self.result.accepted = True
        self.result.message = "best.py verified"
        if not self.on_gpu:
            return
        data, untimed = self.final_bench(source)
        self.ledger.dir.write_bench_csv(self.csv_rows)
        self.result.bench = data
        self.result.untimed_why = untimed
        if data is not None:
            self.result.final_rows = data.get("rows", [])
            self.result.ceilings = data.get("ceilings")
            if data.get("failures"):
                self.result.accepted = False
                self.result.message = f"best.py failed its benchmark re-check: {data['failures'][0].get('message', '')}"


def _folder(label: str, source: str) -> str:
    """``<label>-<sha256 prefix>``: a changed generator never overwrites an earlier run's source."""
    from kernelwright.store import sha256

    return f"{label}-{sha256(source)[:10]}"


def _accuracy_only(verdict: dict) -> bool:
    failures = verdict.get("failures") or []
    return bool(failures) and all(f.get("check") == "mismatch" for f in failures)


def run_offline(task: Task, *, device: str, out: Path, budget: int | None, minutes: float | None, limits: Limits,
                verify_shapes: int, report: Reporter, started: float) -> OptimizeResult:
    """The offline agent: at most ``budget`` tuning rounds, within ``minutes``. Raises OptimizeLimit (not
    covered) before anything is written."""
    limit_s = time_limit_s(minutes)
    if budget is not None and budget < 0:
        raise UsageError("--budget must be 0 or more (tuning rounds on a GPU).")
    budget = DEFAULT_BUDGET["cpu" if device == "cpu" else "cuda"] if budget is None else budget
    if device == "cpu":
        budget = 0  # the interpreter's timings mean nothing: no tuning by time
    report(f"capturing {task.name}: Model.forward → ATen graph")
    prep = prepare(task, device)
    run_dir = RunDir(out)
    plan = {"schema": "kernelwright.tuning_plan/1", "task": task.name, "task_path": str(task.path),
            "agent": "offline", "device": device, "budget": budget, "time_budget_s": limit_s, "dtype": prep.dtype,
            "program": describe(prep.program),
            "probes": [{"label": label, "config": cfg} for label, cfg, _ in prep.probes],
            "buckets": [{**b, "ranked": b["ranked"][:max(budget, 1)]} for b in prep.buckets]}
    ledger = Ledger.open(run_dir, task=task.name, agent="offline", device=device,
                         config={"budget": budget, "time_budget_s": limit_s})
    run_dir.write_json("tuning_plan.json", plan)
    result = OptimizeResult(task=task.name, agent="offline", out=run_dir.root, device=device, best_path=None,
                            accepted=False, message="")
    offline = OfflineRun(prep, ledger, result, budget=budget, clock=Clock(started, limit_s), limits=limits,
                         verify_shapes=verify_shapes, report=report, plan=plan)
    try:
        offline.run()
    finally:
        result.seconds = time.monotonic() - started
        result.evaluations = dict(ledger.counts)
        result.resumed = ledger.resumed
        result.verdict = judge(accepted=result.accepted, device=device, bench=result.bench, cuts=offline.cuts,
                               untimed_why=result.untimed_why)
        run_dir.write_json("summary.json", result.as_json())
        ledger.close("finished" if result.accepted else "failed")
    return result
