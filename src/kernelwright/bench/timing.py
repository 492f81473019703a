"""One timing harness for every implementation: device events, L2 flushed, inputs rotated, budgets in ms.

Follows ``triton.testing.do_bench``: estimate one call, derive warm-up and repetition counts from
millisecond budgets, flush L2 before every repetition by zeroing a buffer larger than it, one event pair
per repetition, one device-wide synchronisation at the end. Inputs rotate among several sets so that a
kernel never re-reads what the previous repetition left in cache. Implementations being compared are
timed in interleaved rounds (A B C, B C A, C A B, ...) so that clock and thermal drift hit them alike.

Events bracket the launching stream only. Work that a candidate leaves on another stream would escape
them, so every implementation is also timed by the host clock over a batch of calls closed by a
device-wide synchronisation (``wall_ms``). A batch of honest calls takes about the larger of the GPU time
(the event median) and the host's launch time (``launch_ms``); a wall time well above both means work
the events did not see.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

FLUSH_BYTES = 256 << 20  # larger than any Hopper L2 (50-60 MB)
Call = Callable[[Sequence[Any]], Any]


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


class DeviceTimer:
    """Event timing on one CUDA device, with the L2 flush buffer allocated once."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.device = device
        self.flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=device)

    def _event(self):
        return self.torch.cuda.Event(enable_timing=True)

    def estimate_ms(self, fn: Call, input_sets: Sequence[Sequence[Any]]) -> float:
        """Milliseconds per call (flush included) over a few calls after one untimed call."""
        fn(input_sets[0])
        self.torch.cuda.synchronize()
        start, end = self._event(), self._event()
        start.record()
        for i in range(5):
            self.flush.zero_()
            fn(input_sets[i % len(input_sets)])
        end.record()
        self.torch.cuda.synchronize()
        return start.elapsed_time(end) / 5

    def samples(self, fn: Call, input_sets: Sequence[Sequence[Any]], n_rep: int, n_warmup: int) -> list[float]:
        starts = [self._event() for _ in range(n_rep)]
        ends = [self._event() for _ in range(n_rep)]
        for i in range(n_warmup):
            fn(input_sets[i % len(input_sets)])
        for i in range(n_rep):
            self.flush.zero_()
            starts[i].record()
            fn(input_sets[i % len(input_sets)])
            ends[i].record()
        self.torch.cuda.synchronize()  # cudaDeviceSynchronize: every stream of the device
        return [s.elapsed_time(e) for s, e in zip(starts, ends)]

    def host_ms(self, fn: Call, input_sets: Sequence[Sequence[Any]], n: int) -> tuple[float, float]:
        """Host milliseconds per call over ``n`` calls: (launch, wall) — until the calls returned, and
        until a device-wide synchronisation after them."""
        self.torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(n):
            fn(input_sets[i % len(input_sets)])
        launched = time.perf_counter()
        self.torch.cuda.synchronize()
        return (launched - t0) * 1e3 / n, (time.perf_counter() - t0) * 1e3 / n

    def graph_samples(self, fn: Call, input_sets: Sequence[Sequence[Any]], n_rep: int) -> list[float] | None:
        """Event timings of CUDA-graph replays (one graph per input set), or None if ``fn`` cannot be
        captured. Launch overhead vanishes: the number a launch-bound kernel reaches inside a graph."""
        torch = self.torch
        graphs = []
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for xs in input_sets:
                    fn(xs)  # warm-up on the capture stream, as torch.cuda.graphs requires
            torch.cuda.current_stream().wait_stream(side)
            for xs in input_sets:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    fn(xs)
                graphs.append(graph)
        except Exception:  # noqa: BLE001 -- not capturable is a fact to report, not an error
            torch.cuda.synchronize()
            return None
        return self.samples(lambda xs: xs[0].replay(), [[g] for g in graphs], n_rep, n_warmup=3)


def time_interleaved(fns: dict[str, Call], input_sets: Sequence[Sequence[Any]], *, device: str,
                     warmup_ms: float = 25.0, rep_ms: float = 100.0, rounds: int = 3, max_reps: int = 2000,
                     graphs: bool = False) -> dict[str, dict[str, Any]]:
    """Time each implementation in ``fns`` over ``input_sets``, interleaved over ``rounds`` in rotating
    order. Returns per name: ``events`` (a Timing dict), ``launch_ms`` and ``wall_ms`` (host clock per
    call, until the calls return and until the device is idle) and, with ``graphs``, ``graph``
    (a Timing dict, or None when the implementation cannot be captured). On CPU only the host clock
    exists and the numbers only exercise the code path."""
    names = list(fns)
    if not device.startswith("cuda"):
        return {name: {"events": summarize(_host_samples(fns[name], input_sets, reps=3)).as_dict(), "launch_ms": None,
                       "wall_ms": None, "graph": None} for name in names}
    timer = DeviceTimer(device)
    estimates = {name: timer.estimate_ms(fns[name], input_sets) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            n_rep = _repetitions(estimates[name], rep_ms / rounds, 10, max_reps)
            n_warmup = _repetitions(estimates[name], warmup_ms, 1, max_reps) if r == 0 else 2
            samples[name] += timer.samples(fns[name], input_sets, n_rep, n_warmup)
    result = {}
    for name in names:
        events = summarize(samples[name])
        launch_ms, wall_ms = timer.host_ms(fns[name], input_sets, _repetitions(events.median_ms, rep_ms / 4, 5, 200))
        entry: dict[str, Any] = {"events": events.as_dict(), "launch_ms": launch_ms, "wall_ms": wall_ms}
        if graphs:
            graph = timer.graph_samples(fns[name], input_sets, _repetitions(events.median_ms, rep_ms / 2, 10, max_reps))
            entry["graph"] = summarize(graph).as_dict() if graph else None
        result[name] = entry
    return result


def time_calls(fn: Call, input_sets: Sequence[Sequence[Any]], *, device: str, warmup_ms: float = 25.0,
               rep_ms: float = 100.0, max_reps: int = 2000) -> Timing:
    """Time one implementation (device events on CUDA, host clock on CPU)."""
    if not device.startswith("cuda"):
        return summarize(_host_samples(fn, input_sets, reps=3))
    timer = DeviceTimer(device)
    estimate = timer.estimate_ms(fn, input_sets)
    return summarize(timer.samples(fn, input_sets, _repetitions(estimate, rep_ms, 10, max_reps),
                                   _repetitions(estimate, warmup_ms, 1, max_reps)))


def _host_samples(fn: Call, input_sets: Sequence[Sequence[Any]], *, reps: int) -> list[float]:
    samples = []
    fn(input_sets[0])
    for i in range(reps):
        t0 = time.perf_counter()
        fn(input_sets[i % len(input_sets)])
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples
