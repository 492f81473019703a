import math

import pytest

from kernelwright.evals.metrics import aggregate, aggregates, bench_speedups, fast_p, geomean, roofline_pct


def unit(task, correct, eager=None, compile_=None, timed=True, agent="a", skill="none", tokens=10):
    return {"agent": agent, "skill": skill, "task": task, "correct": correct, "timings_meaningful": timed,
            "speedup_eager": eager, "speedup_compile": compile_, "roofline_pct": None, "tokens": tokens}


def test_fast_p_counts_every_unit_in_the_denominator_and_needs_strictly_above_p():
    units = [unit("a", True, 2.0), unit("b", True, 1.0), unit("c", False, 5.0), unit("d", True, None)]
    assert fast_p(units, "eager", 0.0) == 0.5   # a and b; c is wrong, d untimed: not fast, still counted
    assert fast_p(units, "eager", 1.0) == 0.25  # 1.0 is not strictly above 1.0
    assert fast_p(units, "eager", 2.0) == 0.0


def test_fast_p_is_unknown_when_nothing_was_timed():
    assert fast_p([unit("a", True, timed=False)], "eager", 0.0) is None


def test_geomean_and_aggregate_over_correct_units_only():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([]) is None
    group = aggregate([unit("a", True, 2.0, 1.0), unit("b", True, 8.0, 4.0), unit("c", False, 100.0, 100.0)])
    assert group["correct_rate"] == pytest.approx(2 / 3)
    assert group["geomean_speedup_eager"] == pytest.approx(4.0)
    assert group["median_speedup_compile"] == pytest.approx(2.5)
    assert group["fast_p_compile"]["1.5"] == pytest.approx(1 / 3)
    assert group["totals"]["tokens"] == 30


def test_an_unknown_cost_makes_the_total_unknown_and_groups_split_by_agent_and_skill():
    groups = aggregates([unit("a", True, agent="x", tokens=None), unit("a", True, agent="x", skill="s"),
                         unit("b", True, agent="x", tokens=5)])
    by = {(g["agent"], g["skill"]): g for g in groups}
    assert by[("x", "none")]["totals"]["tokens"] is None
    assert by[("x", "s")]["totals"]["tokens"] == 10


def test_bench_rows_give_geomean_speedups_and_roofline_percent():
    rows = [{"speedup": {"eager": 2.0, "compile": 0.5}, "fraction_of_copy": 0.5, "fraction_of_matmul": None},
            {"speedup": {"eager": 8.0, "compile": 2.0}, "fraction_of_copy": 0.7, "fraction_of_matmul": 0.1}]
    speeds = bench_speedups(rows)
    assert speeds["eager"] == pytest.approx(4.0) and speeds["compile"] == pytest.approx(1.0)
    assert roofline_pct(rows) == pytest.approx(60.0)
    assert math.isclose(roofline_pct([]) or -1, -1)
