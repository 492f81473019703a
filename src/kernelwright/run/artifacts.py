"""The run directory: every file an agent leaves behind, written atomically, in one layout for every agent.

A run directory holds ``tuning_plan.json``, ``candidates/<name>/kernel.py`` (``kernel_fixed.py`` after a
repair), ``bench_results.csv``, ``profile_report.json``, ``run.sqlite``, ``best.py`` and ``summary.json``.
Each file is written to a temporary name and renamed, so a run killed at any moment leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

# One row per (candidate, shape, implementation): the candidate's own timing and every baseline's, so
# the table compares them without the bench JSON.
CSV_FIELDS = ("candidate", "candidate_id", "role", "parent", "round", "knobs", "dtype", "implementation",
              "median_ms", "iqr_ms", "speedup_vs_candidate", "gbps", "fraction_of_copy", "bound", "recheck_passed",
              "timings_meaningful")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: executor workers write side by side
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """The files of one run directory (``root``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def store_path(self) -> Path:
        return self.root / "run.sqlite"

    @property
    def best_path(self) -> Path:
        return self.root / "best.py"

    def write_text(self, rel: str | Path, text: str) -> Path:
        path = self.root / rel
        atomic_write(path, text)
        return path

    def write_json(self, rel: str | Path, value: Any) -> Path:
        return self.write_text(rel, json.dumps(value, indent=2, default=str))

    def read_json(self, rel: str | Path) -> dict | None:
        try:
            return json.loads((self.root / rel).read_text())
        except (OSError, ValueError):
            return None

    def write_candidate(self, folder: str, filename: str, source: str) -> Path:
        """``candidates/<folder>/<filename>``, left alone when it already holds ``source`` (a resume)."""
        path = self.root / "candidates" / folder / filename
        if not path.is_file() or path.read_text() != source:
            atomic_write(path, source)
        return path

    def write_best(self, source: str) -> Path:
        atomic_write(self.best_path, source)
        return self.best_path

    def write_bench_csv(self, rows: Iterable[dict[str, Any]]) -> Path:
        """Rewritten whole each time (from the store's results on a resumed run): never a half row."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        return self.write_text("bench_results.csv", buffer.getvalue())


def bench_csv_rows(bench: dict[str, Any] | None, *, candidate: str, candidate_id: int | None = None,
                   role: str = "", parent: str | None = None, round: int | None = None) -> list[dict[str, Any]]:
    """The CSV rows of one bench result (``kernelwright.bench/1`` JSON): one per shape and implementation."""
    rows = []
    bench = bench or {}
    for row in bench.get("rows", []):
        for impl, t in (row.get("timings") or {}).items():
            own = impl == "candidate"
            rows.append({"candidate": candidate, "candidate_id": "" if candidate_id is None else candidate_id,
                         "role": role, "parent": parent or "", "round": "" if round is None else round,
                         "knobs": json.dumps(row.get("knobs"), sort_keys=True), "dtype": row.get("dtype"),
                         "implementation": impl, "median_ms": t.get("median_ms"), "iqr_ms": t.get("iqr_ms"),
                         "speedup_vs_candidate": (row.get("speedup") or {}).get(impl, ""),
                         "gbps": row.get("gbps") if own else "",
                         "fraction_of_copy": row.get("fraction_of_copy") if own else "",
                         "bound": row.get("bound", ""), "recheck_passed": (row.get("recheck") or {}).get("passed"),
                         "timings_meaningful": bench.get("timings_meaningful", "")})
    return rows
