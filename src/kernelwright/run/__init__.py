"""One run layer for every agent: the run directory (artifacts), the ledger (evaluations with reuse,
resume, lineage), the verdict against the fastest baseline, and the ``optimize`` entry point."""

from kernelwright.run.offline import OptimizeLimit
from kernelwright.run.entry import optimize
from kernelwright.run.result import OptimizeResult

__all__ = ["OptimizeLimit", "OptimizeResult", "optimize"]
