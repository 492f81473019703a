"""Verifying and benchmarking candidates through the sandboxed path, in parallel where that is safe.

Verification of several candidates may run at once (each in its own worker process); a benchmark holds
the device alone: no verification and no other benchmark runs while one is timing, so two candidates
are never timed on one GPU at once.

``verify_fn``/``bench_fn`` can be injected (tests decide "faster" with a deterministic bench function,
since timings under the CPU interpreter mean nothing); by default they are the real ``verify`` and
``bench``.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kernelwright.sandbox.runner import Limits

VerifyFn = Callable[[Path], dict[str, Any]]
BenchFn = Callable[[Path], dict[str, Any]]


class DeviceLock:
    """Many verifiers or one bench at a time (a readers-writer lock that lets a waiting bench go first)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def shared(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._waiting_writers)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self._cond:
            self._waiting_writers += 1
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Judgement:
    verify: dict[str, Any]
    bench: dict[str, Any] | None
    verify_s: float
    bench_s: float

    @property
    def accepted(self) -> bool:
        return bool(self.verify.get("accepted")) and self.bench is not None and bool(self.bench.get("ok"))


class Evaluator:
    def __init__(self, task: str, device: str, *, verify_shapes: int = 8, limits: Limits = Limits(),
                 bench_shapes: list[dict] | None = None, verify_fn: VerifyFn | None = None,
                 bench_fn: BenchFn | None = None):
        self.task = task
        self.device = device
        self.verify_shapes = verify_shapes
        self.limits = limits
        self.bench_shapes = bench_shapes
        self._verify_fn = verify_fn or self._real_verify
        self._bench_fn = bench_fn or self._real_bench
        self.lock = DeviceLock()

    def settings(self, kind: str) -> dict[str, Any]:
        """What makes two evaluations of one source the same (the store's resume key)."""
        if kind == "verify":
            return {"shapes": self.verify_shapes, "timeout_s": self.limits.timeout_s}
        return {"shapes": self.bench_shapes, "timeout_s": self.limits.timeout_s}

    def _real_verify(self, path: Path) -> dict[str, Any]:
        from kernelwright.verify import verify

        return verify(self.task, path, device=self.device, limits=self.limits, shapes=self.verify_shapes).as_json()

    def _real_bench(self, path: Path) -> dict[str, Any]:
        from kernelwright.bench.bencher import bench

        return bench(self.task, path, device=self.device, shapes=self.bench_shapes, limits=self.limits).as_json()

    def verify(self, path: Path) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        with self.lock.shared():
            result = self._verify_fn(path)
        return result, time.monotonic() - started

    def bench(self, path: Path) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        with self.lock.exclusive():
            result = self._bench_fn(path)
        return result, time.monotonic() - started
