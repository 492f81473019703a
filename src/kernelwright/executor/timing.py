"""One benchmark at a time per physical GPU, across every kernelwright process on the host.

Compiles and correctness runs of several workers may share a GPU; a timing may not: another kernel on
the same GPU during a timed region changes the number. ``timing_lock(device)`` is an exclusive
``flock`` on a file named after the physical GPU (its entry in ``CUDA_VISIBLE_DEVICES`` when the
process is pinned, its index otherwise), so a worker pinned to GPU 3 and an unpinned one timing
``cuda:3`` wait for each other. The kernel releases a flock when its holder dies: a killed worker
never leaves a GPU locked. On the CPU (interpreter timings mean nothing) there is no lock.

Correctness runs hold the lock shared. So that a stream of them, each starting before the last ends, cannot
keep a benchmark waiting forever, every holder first passes a gate (a second flock): a benchmark keeps the
gate while it waits for the GPU, and no new correctness run gets in ahead of it. Never ask for the lock
while holding it (flock counts each open as another holder: that waits forever).

A caller with a time budget passes its ``deadline``: past it the wait ends with ``GpuBusy``, so a run
sharing its GPU with others still ends within its budget.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_DIR_ENV = "KERNELWRIGHT_LOCK_DIR"
_held = threading.local()  # the GPUs whose lock this thread holds
POLL_S = 0.05  # how often a wait with a deadline tries the lock again


class GpuBusy(TimeoutError):
    """The GPU's lock was not free before the caller's deadline."""

    def __init__(self, gpu: str, waited_s: float):
        super().__init__(f"GPU {gpu} stayed busy with other kernelwright work for {waited_s:.0f} s, until the time "
                         "budget ran out")
        self.gpu, self.waited_s = gpu, waited_s


def lock_dir() -> Path:
    folder = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "kernelwright-gpu-locks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def physical_gpu(device: str) -> str | None:
    """The physical GPU behind ``cuda``/``cuda:N`` in this process (None on the CPU)."""
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":")[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ and index < len(visible):
        return visible[index]
    return str(index)


@contextmanager
def timing_lock(device: str, *, shared: bool = False, deadline: float | None = None) -> Iterator[float]:
    """Hold the GPU's timing lock for the block; yields the seconds spent waiting for it. ``shared``: work that
    may run beside other shared holders but never during a timing (a verification's candidate process):
    a benchmark waits for it to end, and it waits for a benchmark to end. ``deadline`` (``time.monotonic()``):
    raise ``GpuBusy`` instead of waiting past it."""
    gpu = physical_gpu(device)
    if gpu is None:
        yield 0.0
        return
    held = _held.__dict__.setdefault("gpus", set())
    if gpu in held:  # a second open of the same file would wait for the first, held by this very thread
        raise RuntimeError(f"timing_lock for GPU {gpu} asked for while this thread holds it: it would wait forever")
    path = lock_dir() / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}.lock"
    started = time.monotonic()
    # Shared holders that keep overlapping would starve a benchmark forever (flock favours no one): every
    # holder first passes a gate, which a benchmark keeps while it waits, so none slips in ahead of it.
    with open(path.with_suffix(".gate"), "a+") as gate, open(path, "a+") as handle:
        _flock(gate, fcntl.LOCK_EX, deadline, gpu, started)
        try:
            _flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, deadline, gpu, started)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        held.add(gpu)
        try:
            yield time.monotonic() - started
        finally:
            held.discard(gpu)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _flock(handle, mode: int, deadline: float | None, gpu: str, started: float) -> None:
    if deadline is None:
        fcntl.flock(handle, mode)
        return
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            now = time.monotonic()
            if now >= deadline:
                raise GpuBusy(gpu, now - started) from None
            time.sleep(min(POLL_S, deadline - now))
