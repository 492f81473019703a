"""The process boundary: the only place that starts processes and the only place candidate code runs."""

from kernelwright.sandbox.runner import Limits, WorkerOutcome, run_worker

__all__ = ["Limits", "WorkerOutcome", "run_worker"]
