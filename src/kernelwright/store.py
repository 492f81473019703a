"""The run store: one SQLite file (``run.sqlite``) per run directory with runs, candidates, evaluations
and their lineage.

Every writer (the offline search, the LLM agent team) records here what it made and what the
verifier and the bench said about it, so a run can be inspected, compared and resumed.

Guarantees:

* WAL journal and ``synchronous=FULL``; every write is its own committed transaction, so a process
  killed with SIGKILL loses at most the write it was in the middle of, never a finished one.
* Resume: :meth:`Store.resume_run` marks a run row running again (one row per run directory);
  :meth:`Store.find_evaluation` returns a finished evaluation of the same source (by sha256),
  kind, device and settings, so a restarted run skips it.
* Generic: other modules may add their own tables to the same file (``store.connection``), e.g. LLM
  calls keyed by ``candidate_id``; :meth:`Store.ensure_schema` runs their ``CREATE TABLE IF NOT EXISTS``.

Example::

    store = Store.open(run_dir / "run.sqlite")
    run_id = store.start_run(task="rmsnorm", agent="offline", device="cuda:0", config={"budget": 64})
    cand = store.add_candidate(run_id, source_path="candidates/c0001/kernel.py", source=text,
                               role="search", agent="offline", parent_id=None, meta={"variant": {...}})
    hit = store.find_evaluation(store.sha256(text), "verify", "cuda:0", settings={"shapes": 8})
    if hit is None:
        store.add_evaluation(cand, "verify", "accepted", result_json, seconds=8.1, device="cuda:0",
                             settings={"shapes": 8})
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    task        TEXT NOT NULL,          -- task name or path
    agent       TEXT NOT NULL,          -- 'offline', 'anthropic:MODEL', ...
    device      TEXT NOT NULL,          -- 'cpu', 'cuda:0'
    config      TEXT NOT NULL,          -- JSON: budget, options
    status      TEXT NOT NULL,          -- 'running', 'finished', 'failed'
    started     REAL NOT NULL,          -- unix seconds
    finished    REAL
);
CREATE TABLE IF NOT EXISTS candidates (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    parent_id   INTEGER REFERENCES candidates(id),   -- lineage: the candidate this one came from
    role        TEXT NOT NULL,          -- 'search', 'writer', 'debugger', 'tuner', ...
    agent       TEXT NOT NULL,
    name        TEXT NOT NULL,          -- short readable label ('rows4_w8_b4096')
    source_path TEXT NOT NULL,          -- relative to the run directory
    source_sha  TEXT NOT NULL,          -- sha256 of the source text
    meta        TEXT NOT NULL,          -- JSON: variant knobs, prompt id, ...
    created     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS candidates_sha ON candidates(source_sha);
CREATE TABLE IF NOT EXISTS evaluations (
    id           INTEGER PRIMARY KEY,
    candidate_id INTEGER NOT NULL REFERENCES candidates(id),
    kind         TEXT NOT NULL,         -- 'verify' or 'bench'
    status       TEXT NOT NULL,         -- verify: 'accepted'/'rejected'; bench: 'ok'/'failed'; 'error'
    device       TEXT NOT NULL,
    settings     TEXT NOT NULL,         -- JSON, canonical: what makes two evaluations the same
    result       TEXT NOT NULL,         -- JSON: VerifyResult.as_json() / BenchResult.as_json()
    seconds      REAL NOT NULL,
    created      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_candidate ON evaluations(candidate_id, kind);
"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(settings: dict[str, Any] | None) -> str:
    return json.dumps(settings or {}, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Candidate:
    id: int
    run_id: int
    parent_id: int | None
    role: str
    agent: str
    name: str
    source_path: str
    source_sha: str
    meta: dict[str, Any]
    created: float


@dataclass(frozen=True)
class Evaluation:
    id: int
    candidate_id: int
    kind: str
    status: str
    device: str
    settings: dict[str, Any]
    result: dict[str, Any]
    seconds: float
    created: float


class Store:
    """A run store on one SQLite file. Use one :class:`Store` per process (SQLite handles the locking)."""

    sha256 = staticmethod(sha256)

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.connection = connection
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode (isolation_level=None): each statement is committed when it returns.
        con = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        store = cls(con, path)
        store.ensure_schema(_SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return store

    def ensure_schema(self, ddl: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements in one transaction (for modules adding tables)."""
        self.connection.executescript("BEGIN;" + ddl + "COMMIT;")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, *, task: str, agent: str, device: str, config: dict[str, Any] | None = None) -> int:
        cur = self.connection.execute(
            "INSERT INTO runs(task, agent, device, config, status, started) VALUES (?, ?, ?, ?, 'running', ?)",
            (task, agent, device, _canonical(config), time.time()))
        return int(cur.lastrowid)

    def resume_run(self, run_id: int, *, config: dict[str, Any] | None = None) -> None:
        """Mark a run running again (a killed or finished run started anew in its directory), with the
        options it now runs under."""
        self.connection.execute("UPDATE runs SET status = 'running', finished = NULL, config = ? WHERE id = ?",
                                (_canonical(config), run_id))

    def finish_run(self, run_id: int, status: str = "finished") -> None:
        self.connection.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, time.time(), run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.connection.execute("SELECT id, task, agent, device, config, status, started, finished FROM runs "
                                       "ORDER BY id").fetchall()
        keys = ("id", "task", "agent", "device", "config", "status", "started", "finished")
        out = [dict(zip(keys, r)) for r in rows]
        for r in out:
            r["config"] = json.loads(r["config"])
        return out

    # -- candidates -----------------------------------------------------------------------------

    def add_candidate(self, run_id: int, *, source_path: str | Path, source: str, role: str, agent: str,
                      name: str = "", parent_id: int | None = None, meta: dict[str, Any] | None = None) -> int:
        """Record a candidate whose source has been written to ``source_path`` (write the file first)."""
        cur = self.connection.execute(
            "INSERT INTO candidates(run_id, parent_id, role, agent, name, source_path, source_sha, meta, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, parent_id, role, agent, name, str(source_path), sha256(source), _canonical(meta), time.time()))
        return int(cur.lastrowid)

    def candidate(self, candidate_id: int) -> Candidate:
        row = self.connection.execute(f"SELECT {_CAND_COLS} FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
        if row is None:
            raise KeyError(f"no candidate {candidate_id}")
        return _candidate(row)

    def candidates(self, run_id: int | None = None) -> list[Candidate]:
        if run_id is None:
            rows = self.connection.execute(f"SELECT {_CAND_COLS} FROM candidates ORDER BY id").fetchall()
        else:
            rows = self.connection.execute(f"SELECT {_CAND_COLS} FROM candidates WHERE run_id = ? ORDER BY id",
                                           (run_id,)).fetchall()
        return [_candidate(r) for r in rows]

    def find_candidate(self, source_sha: str) -> Candidate | None:
        """The earliest candidate with this source (any run): resume reuses its id and directory."""
        row = self.connection.execute(f"SELECT {_CAND_COLS} FROM candidates WHERE source_sha = ? ORDER BY id LIMIT 1",
                                      (source_sha,)).fetchone()
        return _candidate(row) if row else None

    def lineage(self, candidate_id: int) -> list[Candidate]:
        """The candidate and its ancestors, oldest first."""
        chain: list[Candidate] = []
        current: int | None = candidate_id
        while current is not None and len(chain) < 10_000:
            cand = self.candidate(current)
            chain.append(cand)
            current = cand.parent_id
        return chain[::-1]

    # -- evaluations ----------------------------------------------------------------------------

    def add_evaluation(self, candidate_id: int, kind: str, status: str, result: dict[str, Any], *, seconds: float,
                       device: str, settings: dict[str, Any] | None = None) -> int:
        if kind not in ("verify", "bench"):
            raise ValueError(f"evaluation kind must be 'verify' or 'bench', not {kind!r}")
        cur = self.connection.execute(
            "INSERT INTO evaluations(candidate_id, kind, status, device, settings, result, seconds, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (candidate_id, kind, status, device, _canonical(settings), json.dumps(result, default=str), seconds,
             time.time()))
        return int(cur.lastrowid)

    def evaluations(self, candidate_id: int, kind: str | None = None) -> list[Evaluation]:
        sql = f"SELECT {_EVAL_COLS} FROM evaluations WHERE candidate_id = ?"
        args: tuple = (candidate_id,)
        if kind:
            sql += " AND kind = ?"
            args += (kind,)
        return [_evaluation(r) for r in self.connection.execute(sql + " ORDER BY id", args).fetchall()]

    def find_evaluation(self, source_sha: str, kind: str, device: str,
                        settings: dict[str, Any] | None = None) -> Evaluation | None:
        """The latest finished evaluation of a source with this sha256, kind, device and settings (any
        run, any candidate id), or None: what a resumed run uses instead of evaluating again.

        ``device`` is compared by kind of device ('cuda:0' and 'cuda:1' differ; pass what you recorded).
        """
        row = self.connection.execute(
            f"SELECT {', '.join('e.' + c for c in _EVAL_COLS.split(', '))} FROM evaluations e "
            "JOIN candidates c ON c.id = e.candidate_id "
            "WHERE c.source_sha = ? AND e.kind = ? AND e.device = ? AND e.settings = ? ORDER BY e.id DESC LIMIT 1",
            (source_sha, kind, device, _canonical(settings))).fetchone()
        return _evaluation(row) if row else None


_CAND_COLS = "id, run_id, parent_id, role, agent, name, source_path, source_sha, meta, created"
_EVAL_COLS = "id, candidate_id, kind, status, device, settings, result, seconds, created"


def _candidate(row: tuple) -> Candidate:
    values = list(row)
    values[8] = json.loads(values[8])
    return Candidate(*values)


def _evaluation(row: tuple) -> Evaluation:
    values = list(row)
    values[5] = json.loads(values[5])
    values[6] = json.loads(values[6])
    return Evaluation(*values)
