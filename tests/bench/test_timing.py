import pytest

from kernelwright.bench import roofline
from kernelwright.bench.bencher import speedups
from kernelwright.bench.timing import summarize, time_calls


def test_summarize_gives_median_quartiles_and_min():
    t = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (t.median_ms, t.q25_ms, t.q75_ms, t.min_ms, t.n) == (3.0, 2.0, 4.0, 1.0, 5)
    assert t.iqr_ms == 2.0


def test_summarize_of_one_sample_and_of_none():
    assert summarize([2.5]).iqr_ms == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_speedup_is_baseline_over_candidate():
    timings = {"candidate": {"median_ms": 2.0}, "candidate_repeat": {"median_ms": 2.1}, "eager": {"median_ms": 5.0}}
    assert speedups(timings) == {"eager": 2.5}


def test_minimal_bytes_reads_inputs_and_params_once_and_writes_outputs_once():
    import torch

    x = torch.empty(8192, 4096, dtype=torch.bfloat16)
    w = torch.empty(4096, dtype=torch.bfloat16)
    assert roofline.minimal_bytes([x, 3], [torch.empty_like(x)], [w]) == 2 * 8192 * 4096 * 2 + 4096 * 2
    assert roofline.achieved_gbps(10**9, 1.0) == pytest.approx(1000.0)
    assert roofline.fraction_of(1500.0, 3000.0) == 0.5 and roofline.fraction_of(1.0, None) is None


def test_host_timing_on_cpu_calls_the_function_with_rotating_inputs():
    seen = []
    timing = time_calls(lambda xs: seen.append(xs[0]), [[1], [2]], device="cpu")
    assert timing.n == 3 and set(seen) == {1, 2}
