"""Property-based case planning: hypothesis draws extra (knobs, dtype, distribution) cases in the parent.

Hypothesis only *plans* here: the drawn examples are collected into a list and run later in the
sandboxed worker like every other case, so no candidate code ever runs under hypothesis. Its value is
the distribution of what it draws: boundary values of every knob (1, the knob's own value, powers of
two and their neighbours), every dtype, and the fuzz-only distributions (``extreme`` magnitudes near
the dtype's range, ``special`` NaN/±inf). The budget is fixed (``FUZZ_CASES``) so that a CPU verify stays
fast. Without hypothesis installed (it is in the ``test`` extra) a seeded random planner draws the same
space, and the result's environment says which planner ran.
"""

from __future__ import annotations

import random

from kernelwright.tasks.knobs import element_counter, fit_budget
from kernelwright.tasks.task import Task
from kernelwright.verify.inputs import DISTRIBUTIONS, FUZZ_DISTRIBUTIONS

FUZZ_CASES = {"cpu": 4, "cuda": 12}
FUZZ_DISTRIBUTION_POOL = FUZZ_DISTRIBUTIONS + tuple(d for d in DISTRIBUTIONS if d != "task")


def planner_name() -> str:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return "random"
    return "hypothesis"


def draw(task: Task, *, count: int, seed: int, budget: int, leading_cap: int | None) -> list[tuple[dict, str, str]]:
    """``count`` distinct (knobs, dtype, distribution) triples, every knob within its legal range and the
    whole shape within the element budget. The two fuzz-only distributions come first, so even a small
    budget sees them."""
    knobs = list(task.knobs)
    elements = element_counter(task)

    def bounded(shape: dict[str, int]) -> dict[str, int]:
        if leading_cap is not None:
            shape = {k: (min(v, leading_cap) if k != knobs[-1] else v) for k, v in shape.items()}
        return fit_budget(task, shape, budget, elements)

    raw = _hypothesis_draw(task, count, seed) if planner_name() == "hypothesis" else _random_draw(task, count, seed)
    out, seen = [], set()
    for i, (shape, dtype, distribution) in enumerate(raw):
        if i < len(FUZZ_DISTRIBUTIONS):
            distribution = FUZZ_DISTRIBUTIONS[i]
        key = (tuple(bounded(shape).items()), dtype, distribution)
        if key not in seen:
            seen.add(key)
            out.append((bounded(shape), dtype, distribution))
    return out[:count]


def _knob_range(task: Task, knob: str) -> tuple[int, int]:
    step = task.knob_multiple_of.get(knob, 1)
    return step, max(step, task.knobs[knob])


def _hypothesis_draw(task: Task, count: int, seed: int) -> list:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st

    def knob(name: str):
        low, high = _knob_range(task, name)
        edges = sorted({v for v in (low, 2, 3, 16, 17, 31, 32, 33, 127, 128, 129, high) if low <= v <= high})
        return st.one_of(st.sampled_from(edges), st.integers(low, high))

    drawn: list = []
    strategy = st.tuples(st.fixed_dictionaries({k: knob(k) for k in task.knobs}),
                         st.sampled_from(list(task.dtype_names)), st.sampled_from(list(FUZZ_DISTRIBUTION_POOL)))

    @fix_seed(seed)
    @settings(max_examples=count * 3, database=None, phases=[Phase.generate], deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        drawn.append(example)

    collect()
    rng = random.Random(seed)
    rng.shuffle(drawn)  # hypothesis starts from the simplest examples; mix them with the rest
    return drawn


def _random_draw(task: Task, count: int, seed: int) -> list:
    rng = random.Random(seed)
    drawn = []
    for _ in range(count * 3):
        shape = {}
        for k in task.knobs:
            low, high = _knob_range(task, k)
            shape[k] = rng.choice([low, high, rng.randint(low, high), min(high, max(low, 2 ** rng.randint(0, 14) + rng.choice((-1, 0, 1))))])
        drawn.append((shape, rng.choice(list(task.dtype_names)), rng.choice(list(FUZZ_DISTRIBUTION_POOL))))
    return drawn
