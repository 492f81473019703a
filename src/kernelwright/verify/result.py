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
      "checks": {group: {"passed": int, "failed": int}},  # cases per check group: static, process, inputs,
                                                        # anti_cheat, structure, values, determinism, sanitizer
      "cases": [{"id", "shape", "knobs", "dtype", "distribution", "seed", "passed", "outputs": [...],
                 "torch_ops": {aten op: calls}, "launches": int}],   # non-glue ATen ops forward called;
                                                                     # Triton/extension launches
      "log_tail": str,                    # the candidate process's last output, when it failed
      "environment": {"python", "torch", "triton", "device_name", "interpreter", "network_isolated",
                      "isolation_note", "fuzzer"},      # fuzzer: "hypothesis" or "random" (the case planner)
      "notes": [str],                     # what was not tested, and why (a constructor value the task rejects)
      "memory": {"task_bytes": int,       # inputs + outputs of the largest case (on a GPU, the benchmark shape)
                 "largest_case": str,
                 "parent_peak_bytes": int | null,   # peak allocated GPU memory of the verifying process
                 "worker_peak_bytes": int | null},  # and of the candidate's worker; null on the CPU
      "phases": {"plan": float,           # seconds: cases drawn and the task's eager calls timed
                 "worker": float,         # the job file written and the candidate's process run
                 "judge": float,          # its outputs loaded, references computed, everything compared
                 "sanitize": float},      # only with --sanitize; phases not reached are absent
      "seconds": float
    }

Fields added within schema version 1 (additive; readers of the older fields are unaffected):
``checks.static`` / ``checks.anti_cheat`` / ``checks.sanitizer``, ``cases[].torch_ops`` / ``launches``,
``environment.fuzzer``; static-policy failures carry ``rule`` (e.g. ``"import:os"``) and ``line``; a
failure seen on a later call of the same case carries ``call`` (0-based) and, for a variant input set,
``variant_seed``; sanitizer failures carry ``report``. Case ``shape`` may be ``"fuzz"`` (planned by the
property-based fuzzer) and ``distribution`` may be ``"extreme"`` or ``"special"``. ``notes``, ``memory``
``phases`` and a case's ``init_inputs`` (present when the case was built with other constructor arguments than
``get_init_inputs()`` returns; its ``shape`` is then ``"init"``) were added for issue 11.

Check names (``failures[].check``): static policy — ``forbidden_import``, ``forbidden_call``,
``monkeypatch``, ``reads_reference``, ``side_stream``, ``cuda_policy``; worker guards —
``patched_runtime``, ``introspection``, ``torch_ops``, ``no_kernel``, ``background_thread``,
``unsynchronised_work``, ``output_reused``, ``state_retained``, ``mutated_input``, ``bad_output_type``;
structure — ``output_count``, ``output_shape``, ``output_dtype``, ``output_device``,
``overlapping_output``; values — ``mismatch``, ``constant_output``, ``nonfinite_output``,
``special_values``, ``nondeterministic``; process — ``timeout``, ``segfault``, ``exception``, ... (see
``sandbox/worker.py``); ``sanitizer_memcheck``, ``sanitizer_racecheck``.
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
    notes: list[str] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
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
                "environment": self.environment, "notes": self.notes, "memory": self.memory,
                "phases": {k: round(v, 3) for k, v in self.phases.items()}, "seconds": round(self.seconds, 3)}
