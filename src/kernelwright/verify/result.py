"""The verdict of ``kernelwright verify``, as data with reasons; its JSON is a stable schema.

Schema ``kernelwright.verify/1`` (``VerifyResult.as_json()``)::

    {
      "schema": "kernelwright.verify/1",
      "accepted": bool,
      "task": str, "task_path": str, "candidate": str, "device": "cpu" | "cuda[:N]",
      "failures": [                       # empty when accepted; every failed check, not just the first
        {"check": str,                    # named check, e.g. "mismatch", "timeout", "missing_modelnew"
         "message": str,                  # one sentence
         "case": {"id", "shape", "knobs", "dtype", "distribution", "seed"} | null,   # the reproducer
         ...details}                      # check-specific numbers: worst_index, got, expected, rel_err, ...
      ],
      "checks": {group: {"passed": int, "failed": int}},  # cases per check group: process, inputs,
                                                        # structure, values, determinism
      "cases": [{"id", "shape", "knobs", "dtype", "distribution", "seed", "passed", "outputs": [...]}],
      "log_tail": str,                    # the candidate process's last output, when it failed
      "environment": {"python", "torch", "triton", "device_name", "interpreter", "network_isolated",
                      "isolation_note"},
      "seconds": float
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "kernelwright.verify/1"


@dataclass
class VerifyResult:
    task: str
    task_path: str
    candidate: str
    device: str
    failures: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, dict[str, int]] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    log_tail: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def accepted(self) -> bool:
        return not self.failures

    def record(self, check: str, passed: bool) -> None:
        tally = self.checks.setdefault(check, {"passed": 0, "failed": 0})
        tally["passed" if passed else "failed"] += 1

    def fail(self, check: str, message: str, case: dict[str, Any] | None = None, **details: Any) -> None:
        self.failures.append({"check": check, "message": message, "case": case, **details})

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "accepted": self.accepted, "task": self.task, "task_path": self.task_path,
                "candidate": self.candidate, "device": self.device, "failures": self.failures,
                "checks": self.checks, "cases": self.cases, "log_tail": self.log_tail,
                "environment": self.environment, "seconds": round(self.seconds, 3)}
