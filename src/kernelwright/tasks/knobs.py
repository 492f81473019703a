"""Shape knobs: drawing the shapes a candidate is verified on.

Shapes are drawn from the task's knobs so a kernel is never checked only at the shape it is timed on:
tiny, one-row, prime, power-of-two, power-of-two-plus-one tails, wide rows, tall columns and
log-uniform random draws. Each drawn value is capped by the knob's own value and the whole shape by an
element budget (the largest input's elements, built on the meta device), which keeps interpreter runs on
CPU small and drawn shapes on a GPU cheap to build.
"""

from __future__ import annotations

import math
import random

from typing import Callable

from kernelwright.tasks.task import Task, instantiate

PRIMES = (1, 2, 3, 5, 7, 13, 17, 31, 61, 127, 257, 509, 1021, 2053, 4099, 8191, 16381, 32771, 65537, 131071)


def tiny_shape(task: Task) -> dict[str, int]:
    return {k: task.knob_multiple_of.get(k, 1) for k in task.knobs}


def _legal(task: Task, knob: str, value: int) -> int:
    """Round a value to the knob's multiple, within [multiple, the knob's own value]."""
    step = task.knob_multiple_of.get(knob, 1)
    top = max(step, task.knobs[knob] // step * step)
    return min(top, max(step, round(value / step) * step))


def element_counter(task: Task) -> Callable[[dict[str, int]], int]:
    """A function giving the largest input's element count at a shape, from the task's inputs built on the
    meta device (no memory, no time). The product of the knobs undercounts a task whose inputs have dims
    that are no knob (KernelBench's ``input_shape = (8192,)``: a drawn batch of 32768 was 3 GB); it stays
    the measure where the inputs cannot be built on meta."""
    import torch

    try:
        module = task.load()
    except Exception:  # noqa: BLE001 -- a Task with no file behind it (tests, plans): the knobs are the measure
        return lambda shape: math.prod(shape.values())

    def elements(shape: dict[str, int]) -> int:
        try:
            with torch.device("meta"):
                inputs, _ = instantiate(module, {**task.knobs, **shape})
            sizes = [x.numel() for x in inputs if isinstance(x, torch.Tensor)]
        except Exception:  # noqa: BLE001 -- data-dependent input code: the knobs are the estimate
            sizes = []
        return max(sizes) if sizes else math.prod(shape.values())

    return elements


def fit_budget(task: Task, shape: dict[str, int], budget: int,
               elements: Callable[[dict[str, int]], int] | None = None) -> dict[str, int]:
    """Halve the largest shrinkable knob until the shape fits the element budget (``elements``: how a shape
    is counted, default ``element_counter(task)``)."""
    elements = elements or element_counter(task)
    shape = {k: _legal(task, k, v) for k, v in shape.items()}
    while elements(shape) > budget:
        for knob in sorted(shape, key=shape.get, reverse=True):  # the largest knob that can still shrink
            half = shape[knob] // 2
            smaller = _legal(task, knob, half | 1 if shape[knob] % 2 else half)  # odd stays odd: tails survive
            if smaller < shape[knob]:
                shape[knob] = smaller
                break
        else:
            break
    return shape


def draw_shapes(task: Task, *, count: int, budget: int, seed: int,
                leading_cap: int | None = None) -> list[tuple[str, dict[str, int]]]:
    """At least ``count`` labelled shapes, distinct where the knobs allow, the special ones first.

    ``leading_cap`` bounds every knob but the last: under the Triton interpreter the cost grows with the
    number of programs (rows), not with the width of each."""
    rng = random.Random(seed)
    names = list(task.knobs)
    if not names:
        return [("as-written", {})]
    first, last = names[0], names[-1]
    per_knob = max(2, int(budget ** (1 / len(names))))
    elements = element_counter(task)

    def pick(pool: list[int], knob: str) -> int:
        cap = task.knobs[knob]
        legal = [v for v in pool if v <= cap] or [cap]
        return rng.choice(legal)

    special = [
        ("tiny", tiny_shape(task)),
        ("one-row", {k: (1 if k == first else pick(list(PRIMES[4:12]), k)) for k in names}),
        ("primes", {k: pick([p for p in PRIMES if 3 <= p <= per_knob * 4], k) for k in names}),
        ("powers-of-two", {k: pick([2 ** i for i in range(1, 15) if 2 ** i <= per_knob * 4], k) for k in names}),
        ("pow2-plus-one", {k: pick([2 ** i + 1 for i in range(1, 15) if 2 ** i <= per_knob * 4], k) for k in names}),
        ("wide-last", {k: (task.knobs[k] if k == last else pick([1, 2, 3], k)) for k in names}),
        ("tall-first", {k: (task.knobs[k] if k == first else pick([1, 3, 5, 7], k)) for k in names}),
    ]
    shapes: list[tuple[str, dict[str, int]]] = []
    seen: set[tuple[int, ...]] = set()

    def add(label: str, shape: dict[str, int]) -> None:
        if leading_cap is not None:
            shape = {k: (v if k == last else min(v, leading_cap)) for k, v in shape.items()}
        fitted = fit_budget(task, shape, budget, elements)
        key = tuple(fitted[k] for k in names)
        if key not in seen:
            seen.add(key)
            shapes.append((label, fitted))

    for label, shape in special:
        add(label, shape)
    for attempt in range(count * 20):
        if len(shapes) >= count:
            break
        add("random", {k: max(1, int(math.exp(rng.uniform(0, math.log(max(2, task.knobs[k])))))) for k in names})
    return shapes
