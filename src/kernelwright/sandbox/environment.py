"""The environment a candidate process gets: an allow-list, never the parent's secrets."""

from __future__ import annotations

import os
import re
from pathlib import Path

ALLOWED = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL", "TERM",
    "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "CUDA_DEVICE_ORDER", "NVIDIA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CC", "CXX", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS",
    "TRITON_PTXAS_PATH", "TRITON_LIBCUDA_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS",
)
# Even an allowed name is dropped if it looks like a credential.
SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)


def scrubbed_env(scratch: Path, *, interpret: bool) -> dict[str, str]:
    """Allow-listed variables plus private caches and home inside the scratch directory."""
    env = {k: v for k, v in os.environ.items() if k in ALLOWED and not SECRET.search(k)}
    package_root = str(Path(__file__).resolve().parents[2])  # so the worker imports this kernelwright
    # The parent's import path (packages installed with --target, a checkout's src/) is not a secret.
    import_path = os.pathsep.join(p for p in [package_root, os.environ.get("PYTHONPATH", "")] if p)
    env.update(
        HOME=str(scratch),
        TMPDIR=str(scratch / "tmp"),
        TRITON_CACHE_DIR=str(scratch / "triton-cache"),
        TORCH_EXTENSIONS_DIR=str(scratch / "torch-extensions"),
        TORCHINDUCTOR_CACHE_DIR=str(scratch / "inductor-cache"),
        XDG_CACHE_HOME=str(scratch / "cache"),
        PYTHONPATH=import_path,
        PYTHONNOUSERSITE="1",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        # Inductor's compile pool outlives the compile; the per-call deadline is paused while the worker has
        # child processes (compilers), so a pool left by the bench's torch.compile baseline would pause it
        # for good. In-process compiles cost the baseline a few seconds, once.
        TORCHINDUCTOR_COMPILE_THREADS="1",
    )
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    (scratch / "tmp").mkdir(parents=True, exist_ok=True)
    return env
