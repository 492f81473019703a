"""Constructor arguments are inputs too: a candidate must use what it is built with, not bake in the
value ``get_init_inputs()`` returns (an eps stored as ``self.eps`` but written as 1e-6 in its kernel).

What varies: every top-level float of ``get_init_inputs()`` (eps, slopes, margins, scales), to a value
near the given one (×1.7, where a small-magnitude input shows an eps) and one or two far from it (×100,
and ×10⁴ for values under 1e-3, so an eps of 1e-5 becomes 1e-3 and 0.1; values of 1 and more go to
×0.01), the sign kept. Ints are never varied by themselves: one is most often a size that must match the
inputs. A task opts in with ``INIT_VALUES = {position: [value, ...]}``, which also replaces the drawn
values of a float. A value the task's own Model rejects is skipped, and the result says so.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from kernelwright.errors import UsageError

NEAR = 1.7
MAX_CASES = 4  # a few cases carry other arguments; the rest verify get_init_inputs() as written


def other_values(value: float) -> list[tuple[str, float]]:
    """``("near" | "far", value)`` pairs for a float constructor argument (three significant digits, so
    a reproducer reads 1.7e-06, not 1.6999999999999998e-06)."""
    if value == 0:
        return [("near", 1e-3), ("far", 0.5)]
    if abs(value) < 1e-3:
        far = [value * 100, value * 1e4]
    else:
        far = [value * 100] if abs(value) < 1 else [value * 0.01]
    return [(kind, float(f"{v:.3g}")) for kind, v in [("near", value * NEAR)] + [("far", v) for v in far]]


def declared(module: ModuleType, init_inputs: list[Any]) -> dict[int, list[Any]]:
    """The task's ``INIT_VALUES``, checked: positions within get_init_inputs(), each a list of values."""
    found = getattr(module, "INIT_VALUES", {})
    if not isinstance(found, dict) or not all(
            isinstance(k, int) and 0 <= k < len(init_inputs) and isinstance(v, (list, tuple)) for k, v in found.items()):
        raise UsageError(f"INIT_VALUES must map positions in get_init_inputs() (0 to {len(init_inputs) - 1}) to lists "
                         f"of values to try, got {found!r}.")
    return {k: list(v) for k, v in found.items()}


def variations(module: ModuleType, init_inputs: list[Any]) -> list[tuple[int, Any, str]]:
    """``(position, value, "near" | "far" | "declared")`` to try, at most MAX_CASES: each argument's
    first values before any argument's later ones."""
    tried = declared(module, init_inputs)
    per_position = {p: [("declared", v) for v in values] for p, values in tried.items()}
    for p, value in enumerate(init_inputs):
        if type(value) is float and p not in tried:
            per_position[p] = other_values(value)
    ordered = []
    for rank in range(max((len(v) for v in per_position.values()), default=0)):
        ordered += [(p, values[rank][1], values[rank][0]) for p, values in sorted(per_position.items())
                    if rank < len(values)]
    return ordered[:MAX_CASES]
