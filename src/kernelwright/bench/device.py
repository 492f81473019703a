"""Measured device ceilings, cached per GPU model, driver and torch version.

Rooflines use what this device measurably does, not datasheet figures: a large device-to-device copy
(bytes read plus bytes written) is the memory ceiling of a streaming kernel.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from kernelwright.bench.timing import time_calls

COPY_BYTES = 1 << 30  # 1 GiB each way: far beyond L2


@dataclass(frozen=True)
class DeviceProfile:
    device_name: str
    driver: str
    torch: str
    copy_gbps: float

    def as_dict(self) -> dict:
        return asdict(self)


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


def profile(device: str, *, refresh: bool = False) -> DeviceProfile:
    """The device's measured ceilings, from the cache when this GPU, driver and torch were measured before."""
    import torch

    from kernelwright.hardware import describe

    facts = describe(device)
    key = cache_dir() / cache_key(str(facts["device_name"]), str(facts.get("driver", "")), torch.__version__)
    if key.is_file() and not refresh:
        try:
            return DeviceProfile(**json.loads(key.read_text()))
        except (ValueError, TypeError):
            pass  # an old or damaged cache entry is measured again
    measured = DeviceProfile(str(facts["device_name"]), str(facts.get("driver", "")), torch.__version__,
                             round(measure_copy_gbps(device), 1))
    key.parent.mkdir(parents=True, exist_ok=True)
    tmp = key.with_suffix(".tmp")
    tmp.write_text(json.dumps(measured.as_dict(), indent=2))
    tmp.replace(key)
    return measured
