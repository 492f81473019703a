"""What is known about a candidate: the verification just run, plus whatever results a run directory holds.

An optimize run directory (``RUN_DIR/best.py``, ``run.sqlite``, JSON results, sweep
PNGs) is read for what exists; missing pieces are reported as missing, never invented. From the store only
the evaluations of best.py's own source are taken (its verifications and its final benchmark against every
baseline), never a tuning round's, which timed other configurations against eager alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError

CANDIDATE_NAMES = ("best.py", "kernel.py")


@dataclass
class Evidence:
    candidate: Path
    run_dir: Path | None = None
    task_hint: str | None = None  # a task named by a result file of the run directory
    verifications: list[dict[str, Any]] = field(default_factory=list)  # kernelwright.verify/1 JSON objects
    benches: list[dict[str, Any]] = field(default_factory=list)  # kernelwright.bench/1 JSON objects
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def gather(source: Path) -> Evidence:
    """A candidate file, or a run directory holding ``best.py`` and optional results."""
    if source.is_file():
        return Evidence(candidate=source.resolve())
    if not source.is_dir():
        raise UsageError(f"{source} is neither a candidate file nor a run directory.")
    candidate = next((source / n for n in CANDIDATE_NAMES if (source / n).is_file()), None)
    if candidate is None:
        raise UsageError(f"Run directory {source} has no best.py; pass the candidate file itself, or finish the run.")
    ev = Evidence(candidate=candidate.resolve(), run_dir=source.resolve())
    for path in sorted(source.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            ev.notes.append(f"{path.name}: not readable JSON, ignored")
            continue
        if not isinstance(data, dict):
            continue
        schema = str(data.get("schema", ""))
        if schema.startswith("kernelwright.verify"):
            ev.verifications.append(data)
        elif schema.startswith("kernelwright.bench"):
            ev.benches.append(data)
        else:
            continue
        ev.task_hint = ev.task_hint or _task_ref(data)
    ev.plots = sorted(p for p in source.rglob("*.png"))
    if (source / "run.sqlite").is_file():
        _from_store(source / "run.sqlite", ev)
    return ev


def _from_store(path: Path, ev: Evidence) -> None:
    """Add best.py's evaluations recorded by an optimize run (read only: the store is left as it was)."""
    import sqlite3

    from kernelwright.store import sha256

    digest = sha256(ev.candidate.read_text())
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = connection.execute(
                "SELECT e.kind, e.status, e.settings, e.result FROM evaluations e JOIN candidates c "
                "ON c.id = e.candidate_id WHERE c.source_sha = ? ORDER BY e.id", (digest,)).fetchall()
            last_run = connection.execute("SELECT task FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        ev.notes.append(f"run.sqlite: not readable ({exc}), ignored")
        return
    found = 0
    for kind, status, settings, result in rows:
        data = json.loads(result)
        if kind == "verify" and status == "accepted":
            ev.verifications.append(data)
            found += 1
        elif kind == "bench" and status == "ok" and json.loads(settings).get("what") == "final":
            ev.benches.append(data)
            found += 1
        ev.task_hint = ev.task_hint or _task_ref(data)
    if last_run and not ev.task_hint:
        ev.task_hint = last_run[0]
    ev.notes.append(f"run.sqlite: {found} result(s) of best.py's own source taken (lineage kept in the run "
                    "directory; not copied)")


def _task_ref(result: dict[str, Any]) -> str | None:
    """The task a result names: its file where that exists here, else its name (a run made on another
    machine records that machine's paths)."""
    path = result.get("task_path")
    if path and Path(path).is_file():
        return path
    return result.get("task") or path


def slower_than_baseline(source: Path) -> str | None:
    """Why the run directory ``source`` must not be packaged without ``--allow-slower``: its best kernel
    is slower than its fastest baseline in the run's final benchmark (its ``summary.json`` verdict; for a
    file, the folder holding it, so ``RUN/best.py`` counts). None where there is no such verdict."""
    from kernelwright.run.verdict import refusal

    run = Path(source) if Path(source).is_dir() else Path(source).parent  # RUN/best.py is the run's verdict too
    summary = run / "summary.json"
    if not summary.is_file():
        return None
    try:
        verdict = json.loads(summary.read_text()).get("verdict")
    except (OSError, ValueError, AttributeError):
        return None
    why = refusal(verdict)
    return f"Run {source}: {why}" if why else None
