"""What ``optimize`` returns for every agent (schema ``kernelwright.optimize/1``, also ``summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SCHEMA = "kernelwright.optimize/1"
Reporter = Callable[[str], None]


@dataclass
class OptimizeResult:
    task: str
    agent: str
    out: Path
    device: str
    best_path: Path | None
    accepted: bool
    message: str
    verdict: dict[str, Any] = field(default_factory=dict)          # run.verdict.judge(): vs the fastest baseline
    buckets: list[dict[str, Any]] = field(default_factory=list)   # offline: bucket knobs, best config, round
    final_rows: list[dict[str, Any]] = field(default_factory=list)  # bench rows of best.py (GPU)
    ceilings: dict[str, Any] | None = None
    evaluations: dict[str, int] = field(default_factory=dict)      # run / reused counts
    seconds: float = 0.0
    tuning: dict[str, Any] = field(default_factory=dict)           # offline: rounds run, why tuning stopped
    session: dict[str, Any] = field(default_factory=dict)          # LLM team: stop reason, candidates, tokens, cost
    resumed: bool = False
    bench: dict[str, Any] | None = field(default=None, repr=False)  # the final bench JSON (rows are in final_rows)
    untimed_why: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "task": self.task, "agent": self.agent, "out": str(self.out), "device": self.device,
                "best_path": str(self.best_path) if self.best_path else None, "accepted": self.accepted,
                "message": self.message, "verdict": self.verdict, "buckets": self.buckets,
                "final_rows": self.final_rows, "ceilings": self.ceilings, "evaluations": self.evaluations,
                "seconds": round(self.seconds, 1), "tuning": self.tuning, "session": self.session,
                "resumed": self.resumed}
