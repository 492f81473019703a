import statistics

import pytest

from kernelwright.evals.metrics import bootstrap_interval, skill_lifts


def unit(skill, task, run, correct):
    return {"agent": "cmd:a", "skill": skill, "task": task, "run": run, "correct": correct,
            "timings_meaningful": False}


def units_with_lifts(per_run_hits):
    """Two tasks per run; without the skill nothing is verified, with it ``hits`` of the two are."""
    units = []
    for run, hits in enumerate(per_run_hits, start=1):
        for i, task in enumerate(("a", "b")):
            units += [unit("none", task, run, False), unit("s", task, run, i < hits)]
    return units


def test_the_lift_carries_a_seeded_bootstrap_interval_of_its_mean_over_runs():
    (lift,) = skill_lifts(units_with_lifts([0, 1, 1, 2, 2, 2]))
    rate = lift["correct_rate"]
    samples = [0.0, 0.5, 0.5, 1.0, 1.0, 1.0]
    assert rate["n"] == 6 and rate["mean"] == pytest.approx(statistics.mean(samples))
    low, high = rate["ci95"]
    assert rate["min"] < low < rate["mean"] < high <= rate["max"]  # runs that disagree: an interval, not a point
    assert skill_lifts(units_with_lifts([0, 1, 1, 2, 2, 2]))[0]["correct_rate"]["ci95"] == [low, high]  # seeded


def test_runs_that_agree_give_a_point_and_one_run_gives_no_interval():
    assert skill_lifts(units_with_lifts([1, 1, 1]))[0]["correct_rate"]["ci95"] == [0.5, 0.5]
    assert skill_lifts(units_with_lifts([2]))[0]["correct_rate"]["ci95"] is None


def test_more_runs_narrow_the_interval_around_the_mean():
    few, many = bootstrap_interval([0.0, 1.0] * 3), bootstrap_interval([0.0, 1.0] * 50)
    assert few[0] <= 0.5 <= few[1] and many[0] <= 0.5 <= many[1]
    assert many[1] - many[0] < (few[1] - few[0]) / 2
