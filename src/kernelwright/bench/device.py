"""Measured device ceilings, cached per GPU model, driver and torch version.

Rooflines use what this device measurably does, not datasheet figures: a large device-to-device copy
(bytes read plus bytes written) is the ceiling of a streaming kernel, a large reduction the ceiling of a
read-mostly one, and large matrix products on random data (zeros run faster) the compute ceilings.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kernelwright.bench.timing import time_calls
from kernelwright.errors import UsageError

CPU_REFUSAL = ("`kernelwright device` measures a GPU's ceilings and no CUDA GPU is visible here; run it on a "
               "machine with an NVIDIA GPU.")

COPY_BYTES = 1 << 30  # 1 GiB each way: far beyond L2
MATMUL_N = 8192

# Dense datasheet figures (GB/s; TFLOP/s without sparsity), shown beside the measurements. Matched by
# substring of the device name, most specific first.
DATASHEETS = {
    "H200": {"memory_gbps": 4800, "bf16": 989.5, "fp16": 989.5, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"memory_gbps": 2000, "bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"memory_gbps": 3350, "bf16": 989.5, "fp16": 989.5, "tf32": 494.7, "fp32": 66.9},
    "A100": {"memory_gbps": 2039, "bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
}


@dataclass(frozen=True)
class DeviceProfile:
    device_name: str
    driver: str
    torch: str
    copy_gbps: float
    read_gbps: float = 0.0
    matmul_tflops: dict[str, float] = field(default_factory=dict)  # bf16, fp16, tf32, fp32

    def as_dict(self) -> dict:
        return asdict(self)

    def matmul_rate(self, dtype: str) -> float | None:
        key = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(dtype, dtype)
        return self.matmul_tflops.get(key)


def datasheet(device_name: str) -> dict[str, float] | None:
    for key, figures in DATASHEETS.items():
        if key in device_name:
            return figures
    return None


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "kernelwright"


def cache_key(device_name: str, driver: str, torch_version: str) -> str:
    """A file name that changes with anything that can change the ceilings."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{device_name}--{driver}--{torch_version}") + ".json"


def measure_copy_gbps(device: str) -> float:
    import torch

    src = torch.randn(COPY_BYTES // 4, device=device)
    dst = torch.empty_like(src)
    timing = time_calls(lambda _: dst.copy_(src), [()], device=device, warmup_ms=50, rep_ms=300)
    return 2 * COPY_BYTES / (timing.median_ms * 1e-3) / 1e9


def measure_read_gbps(device: str) -> float:
    """A reduction reads every byte and writes almost nothing: the read-mostly ceiling."""
    import torch

    src = torch.randn(COPY_BYTES // 4, device=device)
    timing = time_calls(lambda _: src.sum(), [()], device=device, warmup_ms=50, rep_ms=300)
    return COPY_BYTES / (timing.median_ms * 1e-3) / 1e9


def measure_matmul_tflops(device: str) -> dict[str, float]:
    import torch

    rates = {}
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        for key, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp16", torch.float16, False),
                                 ("tf32", torch.float32, True), ("fp32", torch.float32, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(MATMUL_N, MATMUL_N, device=device, dtype=dtype)
            b = torch.randn(MATMUL_N, MATMUL_N, device=device, dtype=dtype)
            c = torch.empty(MATMUL_N, MATMUL_N, device=device, dtype=dtype)
            timing = time_calls(lambda _: torch.mm(a, b, out=c), [()], device=device, warmup_ms=100, rep_ms=300)
            rates[key] = round(2 * MATMUL_N**3 / (timing.median_ms * 1e-3) / 1e12, 1)
            del a, b, c
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return rates


def profile(device: str, *, refresh: bool = False) -> DeviceProfile:
    """The device's measured ceilings, from the cache when this GPU, driver and torch were measured before.
    ``device`` is ``cuda`` or ``cuda:N``; the CPU is refused with a ``UsageError``."""
    import torch

    from kernelwright.hardware import describe, resolve_device

    # Timing 1-GiB copies and 8192^3 matmuls on a CPU took 13 minutes and measured nothing a GPU
    # kernel's roofline could use: refuse at once instead.
    if device == "cpu" or not torch.cuda.is_available():
        raise UsageError(CPU_REFUSAL)
    device = resolve_device(device)  # "auto" on a GPU machine is the GPU; a typo gets resolve's own message
    facts = describe(device)
    key = cache_dir() / cache_key(str(facts["device_name"]), str(facts.get("driver", "")), torch.__version__)
    if key.is_file() and not refresh:
        try:
            cached = DeviceProfile(**json.loads(key.read_text()))
            if cached.read_gbps and cached.matmul_tflops:
                return cached
        except (ValueError, TypeError):
            pass  # an old or damaged cache entry is measured again
    measured = DeviceProfile(str(facts["device_name"]), str(facts.get("driver", "")), torch.__version__,
                             copy_gbps=round(measure_copy_gbps(device), 1), read_gbps=round(measure_read_gbps(device), 1),
                             matmul_tflops=measure_matmul_tflops(device))
    key.parent.mkdir(parents=True, exist_ok=True)
    tmp = key.with_name(f"{key.name}.{os.getpid()}.tmp")  # units on two GPUs may measure and write at once
    tmp.write_text(json.dumps(measured.as_dict(), indent=2))
    tmp.replace(key)
    return measured
