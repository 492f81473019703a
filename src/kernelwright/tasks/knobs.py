"""Shape knobs: drawing the shapes a candidate is verified on.

Shapes are drawn from the task's knobs so a kernel is never checked only at the shape it is timed on:
tiny, one-row, prime, power-of-two, power-of-two-plus-one tails, wide rows, tall columns and
log-uniform random draws. Each drawn value is capped by the knob's own value and the whole shape by an
element budget (the largest input's elements, built on the meta device), which keeps interpreter runs on
CPU small and drawn shapes on a GPU cheap to build.

A task's Model may accept only some shapes (GroupNorm's channels a multiple of its groups, a loss whose
two inputs broadcast only when two sizes agree). When it raises at the probe shapes, ``relations`` infers
from the task's own values which knobs must stay tied, stay multiples of another value, or stay fixed,
checked by running the Model on the meta device; every drawn or fitted shape then keeps them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random

from typing import Callable

from kernelwright.tasks.task import Task, instantiate

PRIMES = (1, 2, 3, 5, 7, 13, 17, 31, 61, 127, 257, 509, 1021, 2053, 4099, 8191, 16381, 32771, 65537, 131071)
# Shrunk probe shapes (graph capture traces at these too): distinct primes, so no size divides another
# by chance and a divisibility the Model needs shows as an error.
PROBE_SIZES = ((11, 13, 17, 19, 23, 29, 31), (37, 41, 43, 47, 53, 59, 61))


@dataclasses.dataclass(frozen=True)
class Relations:
    """What shrinking must keep, inferred from the task: ``multiple_of`` knob -> (the value's name, value),
    ``tied`` follower -> leader (always equal), ``fixed`` knobs that stay at the task's value. ``why`` is
    the Model's error at the plain probe shape that made them necessary."""

    multiple_of: tuple[tuple[str, tuple[str, int]], ...] = ()
    tied: tuple[tuple[str, str], ...] = ()
    fixed: tuple[str, ...] = ()
    why: str = ""

    def __bool__(self) -> bool:
        return bool(self.multiple_of or self.tied or self.fixed)

    def merged(self, other: Relations) -> Relations:
        return Relations(self.multiple_of + other.multiple_of, self.tied + other.tied,
                         self.fixed + other.fixed, self.why or other.why)

    def sentences(self, task: Task) -> list[str]:
        """One clause per relation, for a run's notes."""
        out = [f"`{k}` a multiple of `{name}` ({d})" for k, (name, d) in self.multiple_of]
        out += [f"`{f}` equal to `{lead}`" for f, lead in self.tied]
        out += [f"`{k}` at {task.knobs[k]}" for k in self.fixed]
        return out

    def note(self, task: Task) -> str:
        """The inferred relations and why, in one sentence ('' when none was needed)."""
        if not self:
            return ""
        return f"shrunk shapes keep {', '.join(self.sentences(task))}: the task's Model fails otherwise ({self.why})"


def first_line(exc: BaseException) -> str:
    """An exception as ``Type: its first line`` (cut to 160 characters): a reason stays one sentence."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__


def constrained(task: Task, rel: Relations) -> Task:
    """The task with the relations folded into ``knob_multiple_of``: an inferred divisor joins the knob's
    step, tied knobs share one step, and a fixed knob's step is its own value (its only legal size)."""
    steps = dict(task.knob_multiple_of)
    for knob, (_, d) in rel.multiple_of:
        steps[knob] = math.lcm(steps.get(knob, 1), d)
    for follower, leader in rel.tied:
        steps[leader] = steps[follower] = math.lcm(steps.get(leader, 1), steps.get(follower, 1))
    for knob in rel.fixed:
        steps[knob] = task.knobs[knob]
    return dataclasses.replace(task, knob_multiple_of=steps)


def impose(task: Task, rel: Relations, shape: dict[str, int]) -> dict[str, int]:
    """A shape made legal: fixed knobs at their value, every knob on its step, tied knobs equal."""
    legal = constrained(task, rel)
    shape = {k: _legal(legal, k, v) for k, v in shape.items()}
    for follower, leader in rel.tied:
        if leader in shape:
            shape[follower] = shape[leader]
    return shape


def probe_shape(task: Task, sizes: tuple[int, ...], rel: Relations | None = None) -> dict[str, int]:
    """The knobs at one probe row: each knob its prime times its step, kept by the relations."""
    rel = relations(task) if rel is None else rel
    legal = constrained(task, rel)
    shape = {k: size * legal.knob_multiple_of.get(k, 1) for k, size in zip(task.knobs, sizes)}
    for knob in rel.fixed:
        shape[knob] = task.knobs[knob]
    for follower, leader in rel.tied:
        shape[follower] = shape[leader]
    return shape


def relations(task: Task) -> Relations:
    """The relations between knobs the task's Model needs (none when it runs at the plain probe shapes,
    or when it cannot be run on the meta device at its own shape: then nothing can be told)."""
    key = _key(task)
    if key not in _INFERRED:  # the verifier, its fuzzing and the bench each ask; the Model runs once
        _INFERRED[key] = _infer(task)
    return _INFERRED[key]


_INFERRED: dict[tuple, Relations] = {}


def _key(task: Task) -> tuple:
    return (str(task.path), tuple(task.knobs.items()), tuple(task.fixed.items()),
            tuple(task.knob_multiple_of.items()))


def _infer(task: Task) -> Relations:
    try:
        module = task.load()
    except Exception:  # noqa: BLE001 -- a Task with no file behind it (tests, plans): nothing to run
        return Relations()
    plain = Relations()
    error = _fails(module, task, plain)
    if error is None or _fails_at(module, task, dict(task.knobs)) is not None:
        return plain
    singles = _candidates(task)
    for rel in itertools.chain(singles, (a.merged(b) for a, b in itertools.combinations(singles, 2))):
        if _fails(module, task, rel) is None:
            return dataclasses.replace(rel, why=error)
    return plain


def _candidates(task: Task) -> list[Relations]:
    """Single relations the task's own values suggest, the least constraining first: a knob a multiple of
    a fixed value it is a multiple of, two equal knobs tied, a knob a multiple of another knob (that one
    held fixed), one knob fixed."""
    knobs, steps = task.knobs, task.knob_multiple_of
    out = [Relations(multiple_of=((k, (name, d)),)) for k in knobs for name, d in task.fixed.items()
           if d > 1 and knobs[k] % d == 0 and steps.get(k, 1) % d]
    out += [Relations(tied=((b, a),)) for a, b in itertools.combinations(knobs, 2) if knobs[a] == knobs[b]]
    out += [Relations(multiple_of=((k, (j, knobs[j])),), fixed=(j,)) for j in knobs for k in knobs
            if j != k and 1 < knobs[j] < knobs[k] and knobs[k] % knobs[j] == 0]
    out += [Relations(fixed=(k,)) for k in knobs]
    return out


def _fails(module, task: Task, rel: Relations) -> str | None:
    """The Model's error at either probe row under these relations, or None when it runs at both."""
    for sizes in PROBE_SIZES:
        error = _fails_at(module, task, probe_shape(task, sizes, rel))
        if error is not None:
            return error
    return None


def _fails_at(module, task: Task, shape: dict[str, int]) -> str | None:
    """Build and run the Model on the meta device (shapes only: no memory, no time)."""
    import torch

    try:
        with torch.device("meta"), torch.no_grad():
            inputs, init_inputs = instantiate(module, {**task.knobs, **shape})
            module.Model(*init_inputs).eval()(*inputs)  # as the verifier builds it
    except Exception as exc:  # noqa: BLE001 -- any error of the task's own code means the shape is not legal
        return f"at knobs {shape}: {first_line(exc)}"
    return None


def tiny_shape(task: Task) -> dict[str, int]:
    """The smallest shape the task file declares legal (no relations inferred: loading a task calls it)."""
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
    is counted, default ``element_counter(task)``). The shape keeps the relations the task's Model needs."""
    elements = elements or element_counter(task)
    rel = relations(task)
    legal = constrained(task, rel)
    followers = {f for f, _ in rel.tied}
    shape = impose(task, rel, shape)
    while elements(shape) > budget:
        for knob in sorted(set(shape) - followers, key=shape.get, reverse=True):  # the largest that can shrink
            half = shape[knob] // 2
            smaller = _legal(legal, knob, half | 1 if shape[knob] % 2 else half)  # odd stays odd: tails survive
            if smaller < shape[knob]:
                shape[knob] = smaller
                shape = impose(task, rel, shape)
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
    kept = constrained(task, relations(task))  # the steps the Model's relations add to the file's own

    def pick(pool: list[int], knob: str) -> int:
        cap = task.knobs[knob]
        legal = [v for v in pool if v <= cap] or [cap]
        return rng.choice(legal)

    special = [
        ("tiny", tiny_shape(kept)),
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
