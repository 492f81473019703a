"""What is known about a candidate: the verification just run, plus whatever results a run directory holds.

An optimize run directory (``RUN_DIR/best.py``, ``run.sqlite``, JSON results, sweep PNGs) is read for
what exists; missing pieces are reported as missing, never invented.
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
        ev.task_hint = ev.task_hint or data.get("task_path") or data.get("task")
    ev.plots = sorted(p for p in source.rglob("*.png"))
    if (source / "run.sqlite").is_file():
        ev.notes.append("run.sqlite present (lineage kept in the run directory; not copied)")
    return ev
