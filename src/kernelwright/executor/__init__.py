"""Where evaluations run: ``local`` (worker slots on this host, one per GPU) or ``ray[:ADDRESS]``.

``make_executor`` builds one from the CLI's ``--executor``, ``--gpus`` and ``--workers``;
``schedule.execute`` runs works on it into a ``claims.UnitStore`` (claimed, run once, stored as they
finish); ``timing.timing_lock`` keeps benchmarks on one GPU from overlapping whatever runs beside them.
"""

from __future__ import annotations

from kernelwright.errors import UsageError
from kernelwright.executor.base import ERROR, INFRASTRUCTURE, Executor, Finished, Work
from kernelwright.executor.claims import UnitStore
from kernelwright.executor.local import LocalExecutor, parse_gpus, plan_slots
from kernelwright.executor.schedule import execute
from kernelwright.executor.timing import timing_lock

__all__ = ["ERROR", "INFRASTRUCTURE", "Executor", "Finished", "UnitStore", "Work", "execute", "make_executor",
           "timing_lock"]


def make_executor(spec: str = "local", *, device: str, gpus: str | None = None,
                  workers: int | None = None) -> Executor:
    """``local`` or ``ray``/``ray:ADDRESS`` for work on ``device`` (already resolved: ``cpu`` or ``cuda:N``)."""
    if spec == "local":
        return LocalExecutor(plan_slots(device, parse_gpus(gpus, device), workers))
    if spec == "ray" or spec.startswith("ray:"):
        if gpus:
            raise UsageError("--gpus is for --executor local; Ray gives each unit one GPU of the cluster.")
        from kernelwright.executor.ray_backend import RayExecutor

        return RayExecutor(spec[4:] or None, gpu=device.startswith("cuda"))
    raise UsageError(f"unknown executor {spec!r}: use local, ray, or ray:ADDRESS (e.g. ray:10.0.0.1:6379).")
