"""The conductor: which role acts next, and when to stop.

One session, round by round::

    seed (the offline agent's best, or the checkout's verified example) ─► verify + bench ─► analysis
    round r:  planner ─► tuning_plan.json
              writers × samples (refining the beam's best-k, or fresh) ─► kernel.py  ─► verify ─► bench
              debugger, at most `repairs` attempts per rejected candidate ─► kernel_fixed.py ─► verify ─► bench
              tuner on the best ─► candidate_variants.json ─► verify ─► bench
              analyst on the best ─► profile_report.json
    stop: a budget (candidates, tokens, dollars, wall time), the roofline reached, no gain for `patience`
          rounds, or the last round; then best.py and summary.json

Every LLM call goes through the journal under a key naming its place in the search (``r02/s01/fix1``) and
every evaluation through the run layer's ledger (``run/ledger.py``: one run row per run directory, reused
on resume), so a killed session resumes without repeating either, and a recorded one replays. The files
are written by ``run/artifacts.py``, in the layout the offline agent uses too. Rejections are kept: their
sentences reach the next prompts.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from kernelwright.agents import analyst, roles, tuner
from kernelwright.agents.context import Context, Scored, related_examples
from kernelwright.agents.evaluate import Evaluator, Judgement
from kernelwright.agents.extract import ExtractionError
from kernelwright.agents.llm.journal import Exchange, Journal, ReplayProvider
from kernelwright.agents.llm.pricing import PriceTable, load_prices
from kernelwright.errors import UsageError
from kernelwright.run.artifacts import RunDir, bench_csv_rows
from kernelwright.run.ledger import Ledger, heartbeat
from kernelwright.run.verdict import judge
from kernelwright.store import Store, sha256


@dataclass(frozen=True)
class Budget:
    """When to stop spending. ``None`` means unlimited. Tokens and dollars are checked before each batch
    of calls, so a session can overshoot by one batch."""

    candidates: int = 24
    tokens: int | None = None
    dollars: float | None = None
    wall_s: float | None = None


@dataclass(frozen=True)
class Strategy:
    samples: int = 4          # writer samples per round (asked in parallel)
    beam: int = 2             # best-k kernels refined each round
    repairs: int = 2          # debugger attempts per rejected candidate
    rounds: int = 6
    variants: int = 2         # tuner variants of the best per round
    patience: int = 2         # rounds without a 1 % gain before stopping
    plateau: float = 0.9      # stop when the best reaches this fraction of the copy-bandwidth roofline
    max_tokens: int = 8192
    temperature: float = 0.8
    parallel: int = 2         # verifications at once (each its own sandboxed process)


@dataclass
class Entry:
    """A candidate of this session and what the verifier and the bench said."""

    name: str
    id: int
    role: str
    path: Path
    source: str
    parent: str | None = None
    key: str | None = None
    judgement: Judgement | None = None

    @property
    def accepted(self) -> bool:
        return self.judgement is not None and self.judgement.accepted

    @property
    def score(self) -> float | None:
        return analyst.score(self.judgement.bench) if self.judgement and self.accepted else None

    def failures(self) -> list[dict[str, Any]]:
        if self.judgement is None:
            return []
        return list(self.judgement.verify.get("failures", [])) + list((self.judgement.bench or {}).get("failures", []))

    def scored(self) -> Scored:
        rows = (self.judgement.bench or {}).get("rows", []) if self.judgement else []
        return Scored(self.name, self.source, self.score,
                      {"shapes": [analyst.one_line(analyst.shape_summary(r)) for r in rows]})


@dataclass
class SessionResult:
    run_dir: Path
    run_id: int
    stop_reason: str
    best: str | None
    best_path: Path | None
    best_score: float | None
    candidates: int
    accepted: int
    totals: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)  # run.verdict.judge(): best against the fastest baseline
    bench: dict[str, Any] | None = None                     # the best kernel's bench JSON
    evaluations: dict[str, int] = field(default_factory=dict)  # run / reused counts
    resumed: bool = False

    def as_json(self) -> dict[str, Any]:
        data = {**asdict(self), "run_dir": str(self.run_dir), "best_path": str(self.best_path) if self.best_path else None}
        data.pop("bench")
        return data


def default_seeds(task_name: str) -> list[tuple[str, str]]:
    """The starting point: the offline agent's best for this op when it covers it, else the checkout's
    verified hand-written kernel for it (``examples/<task>.py``)."""
    try:  # the offline search (issue 5) exposes its best kernel for a task when it covers the op
        from kernelwright.search import offline_best  # type: ignore[attr-defined]

        found = offline_best(task_name)
        if found:
            return [("offline", found)]
    except (ImportError, AttributeError):
        pass
    except UsageError:
        pass
    return [(label, src) for label, src in related_examples(task_name, limit=1) if label.endswith(f"/{task_name}.py")]


class Conductor:
    def __init__(self, task: str, *, provider, out: str | Path, device: str = "cpu", budget: Budget = Budget(),
                 strategy: Strategy = Strategy(), prices: PriceTable | None = None, evaluator: Evaluator | None = None,
                 seeds: list[tuple[str, str]] | None = None, log: Callable[[str], None] | None = None):
        from kernelwright.hardware import describe, resolve_device
        from kernelwright.tasks.task import load_task

        self.task = load_task(task)
        self.device = resolve_device(device)
        self.provider = provider
        if isinstance(provider, ReplayProvider):
            if provider.task not in (self.task.name, str(self.task.path)):
                raise UsageError(f"The recorded run in {provider.run_dir} optimised '{provider.task}', not "
                                 f"'{self.task.name}'; replay it with that task.")
            budget = Budget(**provider.config.get("budget", {}))
            strategy = Strategy(**provider.config.get("strategy", {}))
        self.budget, self.strategy = budget, strategy
        self.prices = prices or load_prices()
        self.out = Path(out)
        self.dir = RunDir(self.out)
        self.evaluator = evaluator or Evaluator(str(self.task.path), self.device)
        self.seeds = default_seeds(self.task.name) if seeds is None else seeds
        self._log = log
        self.started = time.monotonic()
        gpu = describe(self.device)
        if self.device.startswith("cuda"):
            try:
                from kernelwright.bench.device import datasheet, profile

                gpu.update({k: v for k, v in profile(self.device).as_dict().items() if k in
                            ("copy_gbps", "read_gbps", "matmul_tflops")}, datasheet=datasheet(str(gpu["device_name"])))
            except Exception as exc:  # noqa: BLE001 -- facts are a help to the prompt, not a requirement
                gpu["profile_note"] = f"device profile unavailable: {exc}"
        self.ctx = Context(self.task.name, self.task.source, self.device, gpu)
        self.entries: dict[str, Entry] = {}
        self.rejections: list[dict[str, Any]] = []

    # -- bookkeeping ----------------------------------------------------------------------------

    def log(self, event: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 3), "event": event, **fields}
        with open(self.out / "agent.log", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        if self._log:
            self._log(event + (": " + ", ".join(f"{k}={v}" for k, v in fields.items()) if fields else ""))

    def open(self) -> None:
        config = {"budget": asdict(self.budget), "strategy": asdict(self.strategy), "device": self.device}
        self.ledger = Ledger.open(self.dir, task=self.task.name, agent=self.provider.label, device=self.device,
                                  config=config)
        self.store, self.run_id = self.ledger.store, self.ledger.run_id
        if self.ledger.resumed:
            self.log("resume", run_id=self.run_id)
        else:
            self.log("start", run_id=self.run_id, task=self.task.name, agent=self.provider.label, **config)
        self.journal = Journal(self.store.connection, self.run_id, self.provider, self.prices)

    def stop_reason(self) -> str | None:
        totals = self.journal.totals()
        made = sum(1 for e in self.entries.values() if e.role != "seed")
        if made >= self.budget.candidates:
            return "candidates"
        if self.budget.tokens is not None and totals["tokens"] >= self.budget.tokens:
            return "tokens"
        if self.budget.dollars is not None and totals["dollars"] >= self.budget.dollars:
            return "dollars"
        if self.budget.wall_s is not None and time.monotonic() - self.started >= self.budget.wall_s:
            return "wall_time"
        return None

    def room(self) -> int:
        return self.budget.candidates - sum(1 for e in self.entries.values() if e.role != "seed")

    # -- LLM calls ------------------------------------------------------------------------------

    def ask(self, jobs: list[tuple[str, str, str, list[dict[str, str]]]]) -> dict[str, Exchange]:
        """Ask every ``(key, role, system, messages)`` job; recorded keys are answered from the journal."""
        answers: dict[str, Exchange] = {}
        todo = []
        for key, role, system, messages in jobs:
            recorded = self.journal.recorded(key)
            if recorded is not None:
                answers[key] = recorded
            else:
                todo.append((key, role, system, messages))
        if todo:
            s = self.strategy
            with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
                futures = {pool.submit(self.journal.fetch, key, role, system, messages, max_tokens=s.max_tokens,
                                       temperature=s.temperature): (key, system, messages)
                           for key, role, system, messages in todo}
                for future in as_completed(futures):
                    key, system, messages = futures[future]
                    exchange = future.result()
                    self.journal.save(exchange, system, messages, max_tokens=s.max_tokens, temperature=s.temperature)
                    answers[key] = exchange
                    c = exchange.completion
                    self.log("llm_call", key=key, tokens=c.input_tokens + c.output_tokens, cost_usd=exchange.cost_usd,
                             attempts=c.attempts, seconds=round(exchange.seconds, 2))
        return answers

    # -- candidates -----------------------------------------------------------------------------

    def add(self, name: str, filename: str, source: str, *, role: str, parent: Entry | None = None,
            key: str | None = None, meta: dict[str, Any] | None = None, folder: str | None = None) -> Entry:
        """Write the source (to ``candidates/<folder or name>/<filename>``) first, then record it."""
        cid, path = self.ledger.candidate(name, source, role=role, parent=parent.id if parent else None,
                                          folder=folder or name, filename=filename, meta={**(meta or {}), "key": key})
        if key:
            self.journal.link(key, cid)
        entry = Entry(name, cid, role, path, source, parent.name if parent else None, key)
        self.entries[name] = entry
        return entry

    def evaluate(self, entries: list[Entry]) -> None:
        """Verify in parallel, then bench the accepted ones one at a time; finished evaluations are reused."""
        dev, ledger = self.device, self.ledger
        vset, bset = self.evaluator.settings("verify"), self.evaluator.settings("bench")
        verdicts: dict[str, tuple[dict, float]] = {}
        todo = []
        for e in entries:
            hit = ledger.lookup(e.source, "verify", vset)
            if hit:
                verdicts[e.name] = (hit.result, hit.seconds)
            else:
                todo.append(e)
        with ThreadPoolExecutor(max_workers=max(1, self.strategy.parallel)) as pool:
            futures = {pool.submit(self.evaluator.verify, e.path): e for e in todo}
            for future in as_completed(futures):
                e = futures[future]
                result, seconds = future.result()
                ledger.record(e.id, "verify", result, seconds, vset)
                verdicts[e.name] = (result, seconds)
                self.log("verify", candidate=e.name, accepted=bool(result.get("accepted")),
                         checks=sorted({f["check"] for f in result.get("failures", [])}))
        for e in entries:
            result, vs = verdicts[e.name]
            bench_json, bs = None, 0.0
            if result.get("accepted"):
                hit = ledger.lookup(e.source, "bench", bset)
                recorded = None if hit else self._recorded_bench(e.source, dev, bset)
                if hit:
                    bench_json, bs = hit.result, hit.seconds
                elif recorded:  # a replay ranks by the recorded timings, so it takes the recorded path
                    bench_json, bs = recorded.result, recorded.seconds
                    ledger.record(e.id, "bench", bench_json, bs, bset)
                    self.log("bench", candidate=e.name, ok=bool(bench_json.get("ok")), score=analyst.score(bench_json),
                             replayed=True)
                else:
                    with heartbeat(self._log, f"benchmarking {e.name}"):
                        bench_json, bs = self.evaluator.bench(e.path)
                    ledger.record(e.id, "bench", bench_json, bs, bset)
                    self.log("bench", candidate=e.name, ok=bool(bench_json.get("ok")), score=analyst.score(bench_json))
            e.judgement = Judgement(result, bench_json, vs, bs)
            if not e.accepted:
                self.remember_rejection(e.name, e.failures() or [{"check": "bench", "message": "the benchmark failed"}])

    def _recorded_bench(self, source: str, device: str, settings: dict[str, Any]):
        """In a replay on the same kind of device, the recorded run's bench of this exact source."""
        if not isinstance(self.provider, ReplayProvider):
            return None
        path = self.provider.run_dir / "run.sqlite"
        if path.resolve() == (self.out / "run.sqlite").resolve():
            return None
        with Store.open(path) as recorded:
            return recorded.find_evaluation(sha256(source), "bench", device, settings)

    def remember_rejection(self, name: str, failures: list[dict[str, Any]]) -> None:
        seen = set()
        for f in failures:
            if f.get("check") in seen:
                continue
            seen.add(f.get("check"))
            self.rejections.append({"candidate": name, "check": f.get("check"), "message": f.get("message")})
            if len(seen) == 2:
                break
        self.ctx.recent_failures = self.rejections[-6:]

    def ranked(self) -> list[Entry]:
        accepted = [e for e in self.entries.values() if e.accepted]
        return sorted(accepted, key=lambda e: (-(e.score or 0.0), e.id))

    # -- roles ----------------------------------------------------------------------------------

    def seed(self) -> None:
        for i, (label, source) in enumerate(self.seeds):
            e = self.add(f"seed-{i}", "kernel.py", source, role="seed", meta={"from": label})
            self.evaluate([e])
            self.log("seed", candidate=e.name, source=label, accepted=e.accepted, score=e.score)
        best = self.ranked()
        if best:
            self.ctx.analysis = analyst.analysis(best[0].judgement.bench, device=self.device)

    def plan(self, r: int) -> dict[str, Any]:
        key = f"r{r:02}/plan"
        system, messages = roles.planner(self.ctx, r)
        plan = roles.parse_plan(self.ask([(key, "planner", system, messages)])[key].completion.text)
        artifact = {"round": r, "task": self.task.name, **plan}
        self._write_json(Path("rounds") / f"r{r:02}" / "tuning_plan.json", artifact)
        self._write_json(Path("tuning_plan.json"), artifact)
        return plan

    def write(self, r: int, plan: dict[str, Any]) -> list[Entry]:
        beam = self.ranked()[: self.strategy.beam]
        n = min(self.strategy.samples, self.room())
        jobs, parents = [], {}
        for i in range(n):
            parent = beam[i % len(beam)] if beam else None
            profile = self._read_json(parent.path.parent.relative_to(self.out) / "profile_report.json") if parent else None
            system, messages = roles.writer(self.ctx, plan, i, parent.scored() if parent else None, profile)
            key = f"r{r:02}/s{i:02}/write"
            jobs.append((key, "writer", system, messages))
            parents[key] = parent
        answers = self.ask(jobs)
        made = []
        for key, *_ in jobs:
            name = key.rsplit("/", 1)[0].replace("/", "-")
            try:
                source = roles.parse_kernel(answers[key].completion.text)
            except ExtractionError as exc:
                self.log("no_code", key=key, reason=str(exc))
                self.remember_rejection(name, [{"check": "no_code", "message": str(exc)}])
                continue
            made.append(self.add(name, "kernel.py", source, role="writer", parent=parents[key], key=key))
        self.evaluate(made)
        return made

    def repair(self, entries: list[Entry]) -> None:
        pending = [e for e in entries if not e.accepted]
        for attempt in range(1, self.strategy.repairs + 1):
            pending = pending[: max(0, self.room())]
            if not pending or self.stop_reason():
                return
            jobs, sources = [], {}
            for e in pending:
                base = e.key.rsplit("/", 1)[0] if e.key else e.name
                key = f"{base}/fix{attempt}"
                log_tail = (e.judgement.verify.get("log_tail") or (e.judgement.bench or {}).get("log_tail") or "")
                system, messages = roles.debugger(self.ctx, e.source, e.failures(), log_tail, attempt)
                jobs.append((key, "debugger", system, messages))
                sources[key] = e
            answers = self.ask(jobs)
            fixed = []
            for key, *_ in jobs:
                broken = sources[key]
                root = broken.name.split("-fix")[0]
                try:
                    source = roles.parse_kernel(answers[key].completion.text)
                except ExtractionError as exc:
                    self.log("no_code", key=key, reason=str(exc))
                    continue
                filename = "kernel_fixed.py" if attempt == 1 else f"kernel_fixed_{attempt}.py"
                fixed.append(self.add(f"{root}-fix{attempt}", filename, source, role="debugger", parent=broken,
                                      key=key, folder=root))
            self.evaluate(fixed)
            for e in fixed:
                self.log("repair", candidate=e.name, attempt=attempt, accepted=e.accepted)
            pending = [e for e in fixed if not e.accepted]

    def tune(self, r: int) -> None:
        best = self.ranked()[:1]
        n = min(self.strategy.variants, self.room())
        if not best or n <= 0:
            return
        parent = best[0]
        found = [v for v in tuner.variants(parent.source, limit=n + 4)
                 if self.store.find_candidate(sha256(v.source)) is None][:n]
        made = [self.add(f"r{r:02}-t{i:02}", "kernel.py", v.source, role="tuner", parent=parent,
                         meta={"changes": list(v.changes)}) for i, v in enumerate(found)]
        self.evaluate(made)
        artifact = {"round": r, "parent": parent.name, "variants": [
            {"candidate": e.name, "changes": list(v.changes), "accepted": e.accepted, "score": e.score}
            for e, v in zip(made, found)]}
        self._write_json(Path("rounds") / f"r{r:02}" / "candidate_variants.json", artifact)
        self._write_json(Path("candidate_variants.json"), artifact)

    def profile(self, entry: Entry) -> dict[str, Any]:
        report = analyst.profile_report(entry.name, entry.judgement.bench, device=self.device)
        self._write_json(Path("candidates") / entry.path.parent.name / "profile_report.json", report)
        self._write_json(Path("profile_report.json"), report)
        return report

    # -- the session ----------------------------------------------------------------------------

    def run(self) -> SessionResult:
        self.open()
        reason = None
        reason, status = None, "failed"
        try:
            self.seed()
            best_score, stale = (self.ranked()[0].score if self.ranked() else None), 0
            for r in range(1, self.strategy.rounds + 1):
                reason = self.stop_reason()
                if reason:
                    break
                plan = self.plan(r)
                if (reason := self.stop_reason()):
                    break
                made = self.write(r, plan)
                self.repair(made)
                if not self.stop_reason():
                    self.tune(r)
                ranked = self.ranked()
                self.ctx.best = [e.scored() for e in ranked[: self.strategy.beam]]
                if ranked:
                    if not self.ctx.analysis:
                        self.ctx.analysis = analyst.analysis(ranked[0].judgement.bench, device=self.device)
                    report = self.profile(ranked[0])
                    self.log("round", round=r, best=ranked[0].name, score=ranked[0].score,
                             roofline=report["roofline_fraction"], **self.journal.totals())
                    frac = report["roofline_fraction"]
                    if frac is not None and frac >= self.strategy.plateau:
                        reason = "roofline"
                        break
                    score = ranked[0].score
                    if best_score is not None and score is not None and score <= best_score * 1.01:
                        stale += 1
                    else:
                        stale = 0
                    best_score = score if score is not None else best_score
                    if stale >= self.strategy.patience:
                        reason = "no_improvement"
                        break
                self._write_csv()
            reason = reason or self.stop_reason() or "rounds"
            result = self.finish(reason)
            status = "finished"
            return result
        finally:
            self.ledger.close(status)

    def finish(self, reason: str) -> SessionResult:
        ranked = self.ranked()
        best = ranked[0] if ranked else None
        if best is not None:
            self.dir.write_best(best.source)
            self.profile(best)
        self._write_csv()
        bench = best.judgement.bench if best else None
        result = SessionResult(self.out, self.run_id, reason, best.name if best else None,
                               self.dir.best_path if best else None, best.score if best else None,
                               # written candidates and how many of them were accepted: the seed is in neither
                               sum(1 for e in self.entries.values() if e.role != "seed"),
                               sum(1 for e in ranked if e.role != "seed"),
                               self.journal.totals(), judge(accepted=best is not None, device=self.device, bench=bench),
                               bench, dict(self.ledger.counts), self.ledger.resumed)
        self._write_json(Path("summary.json"), {**result.as_json(), "lineage": [
            c.name for c in self.ledger.lineage(best.id)] if best else []})
        self.log("stop", reason=reason, best=result.best, score=result.best_score, **result.totals)
        return result

    # -- files ----------------------------------------------------------------------------------

    def _write_json(self, rel: Path, value: Any) -> None:
        self.dir.write_json(rel, value)

    def _read_json(self, rel: Path) -> dict | None:
        return self.dir.read_json(rel)

    def _write_csv(self) -> None:
        rows = []
        for e in sorted(self.entries.values(), key=lambda e: e.id):
            bench = e.judgement.bench if e.judgement else None
            rows += bench_csv_rows(bench, candidate=e.name, candidate_id=e.id, role=e.role, parent=e.parent)
        self.dir.write_bench_csv(rows)


def run_session(task: str, *, provider, out: str | Path, **options: Any) -> SessionResult:
    """Run (or resume, when ``out`` holds an unfinished session of the same task and agent) one session."""
    return Conductor(task, provider=provider, out=out, **options).run()
