"""The verdict: the best kernel against the fastest baseline per shape, from fake bench results."""

import pytest

from kernelwright.run.verdict import judge, refusal


def _row(kernel_ms, **baselines):
    timings = {"candidate": {"median_ms": kernel_ms}, "candidate_repeat": {"median_ms": kernel_ms}}
    timings.update({k: {"median_ms": v} for k, v in baselines.items()})
    return {"knobs": {"n": len(baselines)}, "dtype": "float32", "timings": timings}


def test_each_shape_is_judged_against_its_own_fastest_baseline():
    bench = {"timings_meaningful": True, "rows": [_row(1.0, eager=2.0, compile=1.5), _row(1.0, eager=0.9, compile=0.6)]}
    v = judge(accepted=True, device="cuda:0", bench=bench)
    assert [s["fastest_baseline"] for s in v["shapes"]] == ["compile", "compile"]
    assert v["ratio_geomean"] == pytest.approx((1.5 * 0.6) ** 0.5) and v["status"] == "slower"
    assert v["sentence"] == "verified but 1.05x slower than torch.compile (geomean over 2 shape(s)): not worth using"
    assert v["slower_shapes"] == 1
    assert "1.05x slower than torch.compile" in refusal(v) and "--allow-slower" in refusal(v)


def test_faster_untimed_none_and_budget_cuts():
    fast = judge(accepted=True, device="cuda:0", bench={"rows": [_row(0.5, eager=1.0, native=0.6)]},
                 cuts=["tuning (no round fitted)"])
    assert fast["status"] == "faster" and fast["fastest_baseline"] == "native"
    assert fast["sentence"] == ("faster than the native PyTorch op by 1.20x (at its one shape); the time budget cut "
                                "tuning (no round fitted)")
    assert refusal(fast) is None
    cpu = judge(accepted=True, device="cpu", bench={"timings_meaningful": False, "rows": [_row(0.1, eager=9.0)]})
    assert cpu["status"] == "untimed" and "untimed on CPU" in cpu["sentence"] and refusal(cpu) is None
    cut = judge(accepted=True, device="cuda:0", bench=None, untimed_why="untimed: the time budget ran out")
    assert cut["status"] == "untimed" and cut["sentence"] == "verified; untimed: the time budget ran out"
    assert judge(accepted=False, device="cuda:0", bench=None)["status"] == "none"


def test_a_bench_with_failures_claims_no_speed():
    """Rows whose timings a failure taints (work outside the timed stream) are no comparison."""
    bench = {"rows": [_row(0.5, eager=1.0)], "failures": [{"check": "work_outside_timed_stream", "message": "x"}]}
    v = judge(accepted=True, device="cuda:0", bench=bench,
              untimed_why="not benchmarked: the benchmark failed (work_outside_timed_stream: x)")
    assert v["status"] == "untimed" and v["ratio_geomean"] is None and v["shapes"] == []
    assert v["sentence"] == "verified; not benchmarked: the benchmark failed (work_outside_timed_stream: x)"
    assert judge(accepted=True, device="cuda:0", bench=None)["sentence"] == (
        "verified; not benchmarked: the final benchmark did not run")
