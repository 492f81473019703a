"""The ledger of a run: one run row per run directory, candidates with lineage, evaluations with reuse.

Both agents go through it. Opening a run directory again (a killed run started with the same ``--out``)
reuses its run row for the same task and agent, so the store has one run per directory; every evaluation
is looked up first (by source sha256, kind, device and settings) and run only when no finished one is on
record, so a resumed run repeats nothing it finished.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kernelwright.run.artifacts import RunDir
from kernelwright.store import Candidate, Store, sha256

Reporter = Callable[[str], None]
HEARTBEAT_S = 10.0  # a step longer than this prints a line, so a long wait is never silent


@dataclass
class Outcome:
    """What an evaluation said (its JSON), how long it took when it ran, and whether it came from the store."""

    result: dict[str, Any]
    seconds: float
    reused: bool


def status_of(kind: str, result: dict[str, Any]) -> str:
    if kind == "verify":
        return "accepted" if result.get("accepted") else "rejected"
    return "ok" if result.get("ok", not result.get("failures")) else "failed"


class Ledger:
    def __init__(self, run_dir: RunDir, store: Store, run_id: int, *, agent: str, device: str, resumed: bool):
        self.dir, self.store, self.run_id = run_dir, store, run_id
        self.agent, self.device, self.resumed = agent, device, resumed
        self.counts = {"run": 0, "reused": 0}
        self.last_seconds = 0.0  # what the last evaluation took when it ran (now, or in the run that stored it)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, run_dir: RunDir, *, task: str, agent: str, device: str, config: dict[str, Any]) -> "Ledger":
        """The run row of this task and agent in ``run_dir`` (marked running again), or a new one."""
        run_dir.create()
        store = Store.open(run_dir.store_path)
        row = store.connection.execute("SELECT id FROM runs WHERE task = ? AND agent = ? ORDER BY id DESC LIMIT 1",
                                       (task, agent)).fetchone()
        if row is None:
            return cls(run_dir, store, store.start_run(task=task, agent=agent, device=device, config=config),
                       agent=agent, device=device, resumed=False)
        store.resume_run(row[0], config=config)
        return cls(run_dir, store, row[0], agent=agent, device=device, resumed=True)

    def close(self, status: str) -> None:
        self.store.finish_run(self.run_id, status)
        self.store.close()

    def companion(self) -> "Ledger":
        """This run's ledger for another thread: a sqlite connection serves only the thread that opened it,
        so the companion opens its own; the counts (and their lock) are shared. ``release`` it when done."""
        other = Ledger(self.dir, Store.open(self.dir.store_path), self.run_id, agent=self.agent, device=self.device,
                       resumed=self.resumed)
        other.counts, other._lock = self.counts, self._lock
        return other

    def release(self) -> None:
        """Close a companion's connection; the run row stays as it is (its owner closes the run)."""
        self.store.close()

    # -- candidates -------------------------------------------------------------------------------

    def candidate(self, name: str, source: str, *, role: str, parent: int | None = None, folder: str | None = None,
                  filename: str = "kernel.py", meta: dict[str, Any] | None = None) -> tuple[int, Path]:
        """Write ``candidates/<folder or name>/<filename>`` first, then record it (once: a resume finds it)."""
        path = self.dir.write_candidate(folder or name, filename, source)
        rel = str(path.relative_to(self.dir.root))
        row = self.store.connection.execute("SELECT id FROM candidates WHERE source_path = ? AND source_sha = ? "
                                            "ORDER BY id LIMIT 1", (rel, sha256(source))).fetchone()
        if row:
            return row[0], path
        cid = self.store.add_candidate(self.run_id, source_path=rel, source=source, role=role, agent=self.agent,
                                       name=name, parent_id=parent, meta=meta)
        return cid, path

    def lineage(self, candidate_id: int) -> list[Candidate]:
        return self.store.lineage(candidate_id)

    # -- evaluations ------------------------------------------------------------------------------

    def lookup_quietly(self, source: str, kind: str, settings: dict[str, Any]) -> Outcome | None:
        """A finished evaluation on record, without counting it as reused (to ask what it would cost)."""
        hit = self.store.find_evaluation(sha256(source), kind, self.device, settings)
        return None if hit is None else Outcome(hit.result, hit.seconds, True)

    def lookup(self, source: str, kind: str, settings: dict[str, Any]) -> Outcome | None:
        hit = self.lookup_quietly(source, kind, settings)
        if hit is None:
            return None
        with self._lock:
            self.counts["reused"] += 1
        return hit

    def record(self, candidate_id: int, kind: str, result: dict[str, Any], seconds: float,
               settings: dict[str, Any]) -> Outcome:
        self.store.add_evaluation(candidate_id, kind, status_of(kind, result), result, seconds=seconds,
                                  device=self.device, settings=settings)
        with self._lock:
            self.counts["run"] += 1
        return Outcome(result, seconds, False)

    def evaluate(self, kind: str, candidate_id: int, source: str, settings: dict[str, Any],
                 run: Callable[[], dict[str, Any]], *, report: Reporter | None = None, what: str = "",
                 keep: Callable[[dict[str, Any]], bool] | None = None) -> Outcome:
        """A finished evaluation from the store, or run it now (with a heartbeat) and record it at once.
        ``keep`` false: the result is no verdict on the candidate (a worker the time budget stopped), so
        it is returned but not recorded, and a later run evaluates again."""
        hit = self.lookup(source, kind, settings)
        if hit is not None:
            self.last_seconds = hit.seconds
            return hit
        started = time.monotonic()
        with heartbeat(report, what or kind):
            result = run()
        seconds = time.monotonic() - started
        self.last_seconds = seconds
        if keep is not None and not keep(result):
            return Outcome(result, seconds, False)
        return self.record(candidate_id, kind, result, seconds, settings)


class heartbeat:
    """While a step runs, a line every ``HEARTBEAT_S`` seconds: what it is and how long it has taken."""

    def __init__(self, report: Reporter | None, what: str, every: float = HEARTBEAT_S):
        self.report, self.what, self.every = report, what, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "heartbeat":
        if self.report is not None:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.every):
            self.report(f"  still {self.what}: {time.monotonic() - started:.0f} s")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
