"""Which device a command runs on, and the facts about it that every result records."""

from __future__ import annotations

import platform
from importlib import metadata

from kernelwright.errors import UsageError


def resolve_device(device: str) -> str:
    """``cpu`` (Triton interpreter), ``cuda``/``cuda:N``, or ``auto`` (a GPU when one is visible, else
    the CPU); a missing GPU is a usage error."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError("No CUDA GPU is visible to PyTorch; run with `--device cpu` (Triton interpreter, "
                             "correctness only) or on a machine with an NVIDIA GPU.")
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise UsageError(f"{device} does not exist; this machine has {torch.cuda.device_count()} GPU(s).")
        return f"cuda:{index}"
    raise UsageError(f"Unknown device '{device}'; use `auto`, `cpu` or `cuda` (optionally `cuda:N`).")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        if package == "kernelwright":  # run from a source tree (PYTHONPATH=src), as on the device machine
            from kernelwright import __version__

            return f"{__version__} (source tree)"
        return "not installed"


def describe(device: str) -> dict[str, object]:
    """Versions and the device's name: what makes a number a number."""
    import torch

    facts: dict[str, object] = {
        "python": platform.python_version(), "torch": torch.__version__, "triton": _version("triton"),
        "kernelwright": _version("kernelwright"), "interpreter": device == "cpu",
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        facts.update(device_name=props.name, compute_capability=f"{props.major}.{props.minor}",
                     sm_count=props.multi_processor_count, memory_gb=round(props.total_memory / 1e9, 1),
                     cuda=torch.version.cuda, driver=_driver_version())
    else:
        facts.update(device_name=f"CPU ({platform.processor() or platform.machine()}), Triton interpreter")
    return facts


def _driver_version() -> str:
    """The NVIDIA driver version through NVML when present, else the CUDA driver API version."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 -- NVML missing or unusable: fall back
        import torch

        api = torch._C._cuda_getDriverVersion()
        return f"CUDA driver API {api // 1000}.{api % 1000 // 10}"
