"""kernelwright: a lab that verifies, benchmarks and searches GPU kernels for PyTorch operators."""

from kernelwright.errors import KernelwrightError, UsageError

__version__ = "0.1.0"
__all__ = ["KernelwrightError", "UsageError", "__version__"]
