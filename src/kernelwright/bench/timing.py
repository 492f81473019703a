"""One timing harness for every implementation: device events, L2 flushed, inputs rotated, budgets in ms.

Follows ``triton.testing.do_bench``: estimate one call, derive warm-up and repetition counts from
millisecond budgets, flush L2 before every repetition by zeroing a buffer larger than it, one event pair
per repetition, one device-wide synchronisation at the end. Inputs rotate among several sets so that a
kernel never re-reads what the previous repetition left in cache.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

FLUSH_BYTES = 256 << 20  # larger than any Hopper L2 (50-60 MB)


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call over ``n`` repetitions."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    n: int

    @property
    def iqr_ms(self) -> float:
        return self.q75_ms - self.q25_ms

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "iqr_ms": self.iqr_ms}


def summarize(samples_ms: Sequence[float]) -> Timing:
    """Median, quartiles and minimum of per-call samples (inclusive quartiles, as numpy's default)."""
    if not samples_ms:
        raise ValueError("no timing samples")
    ordered = sorted(samples_ms)
    if len(ordered) == 1:
        q25 = q75 = ordered[0]
    else:
        q25, _, q75 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Timing(statistics.median(ordered), q25, q75, ordered[0], len(ordered))


def _repetitions(estimate_ms: float, budget_ms: float, low: int, high: int) -> int:
    return max(low, min(high, int(budget_ms / max(estimate_ms, 1e-3))))


def time_calls(fn: Callable[[Sequence[Any]], Any], input_sets: Sequence[Sequence[Any]], *, device: str,
               warmup_ms: float = 25.0, rep_ms: float = 100.0, max_reps: int = 2000) -> Timing:
    """Time ``fn(inputs)`` rotating over ``input_sets``. On CPU the numbers are host-clock and only
    useful to exercise the code path (the interpreter is not a GPU)."""
    if not device.startswith("cuda"):
        return _time_host(fn, input_sets, reps=3)
    import torch

    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    sync = torch.cuda.synchronize
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn(input_sets[0])
    sync()
    start.record()
    for i in range(5):
        flush.zero_()
        fn(input_sets[i % len(input_sets)])
    end.record()
    sync()
    estimate = start.elapsed_time(end) / 5  # includes the flush: it only sizes the loops
    n_warmup = _repetitions(estimate, warmup_ms, 1, max_reps)
    n_rep = _repetitions(estimate, rep_ms, 10, max_reps)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    for i in range(n_warmup):
        fn(input_sets[i % len(input_sets)])
    for i in range(n_rep):
        flush.zero_()
        starts[i].record()
        fn(input_sets[i % len(input_sets)])
        ends[i].record()
    sync()  # cudaDeviceSynchronize: every stream of the device, not only the current one
    return summarize([s.elapsed_time(e) for s, e in zip(starts, ends)])


def _time_host(fn, input_sets, *, reps: int) -> Timing:
    samples = []
    fn(input_sets[0])
    for i in range(reps):
        t0 = time.perf_counter()
        fn(input_sets[i % len(input_sets)])
        samples.append((time.perf_counter() - t0) * 1e3)
    return summarize(samples)
