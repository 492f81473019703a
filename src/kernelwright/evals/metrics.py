"""Per-unit numbers and their aggregates per (agent, skill), KernelBench's ``fast_p`` included.

``fast_p`` is KernelBench's: the share of ALL units that are correct AND faster than the baseline by
strictly more than ``p``; a unit that failed, or whose speedup is unknown, counts as not fast. When no
unit of a group has meaningful timings (a CPU run), ``fast_p`` and the speedup statistics are None.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any, Callable, Iterable

FAST_P = (0.0, 1.0, 1.2, 1.5, 2.0)
BASELINES = ("eager", "compile")
COST_KEYS = ("tokens_in", "tokens_out", "tokens", "dollars", "llm_calls", "repairs", "tool_calls", "wall_s")


def geomean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def bench_speedups(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The geomean over the bench's shapes of each baseline's time over the kernel's (> 1: faster)."""
    return {name: geomean((row.get("speedup") or {}).get(name) for row in rows) for name in BASELINES}


def roofline_pct(rows: list[dict[str, Any]]) -> float | None:
    """The mean over shapes of the kernel's fraction of its bound ceiling (copy or matmul), in percent."""
    fractions = []
    for row in rows:
        known = [f for f in (row.get("fraction_of_copy"), row.get("fraction_of_matmul")) if f is not None]
        if known:
            fractions.append(max(known))
    return 100.0 * sum(fractions) / len(fractions) if fractions else None


def fast_p(units: list[dict[str, Any]], baseline: str, p: float) -> float | None:
    """Correct and speedup strictly above ``p``, over every unit given (None: no timings to judge)."""
    if not units or not any(u.get("timings_meaningful") for u in units):
        return None
    key = f"speedup_{baseline}"
    fast = sum(1 for u in units if u.get("correct") and u.get(key) is not None and u[key] > p)
    return fast / len(units)


def _total(units: list[dict[str, Any]], key: str) -> float | int | None:
    # unknown in one unit makes the total unknown: a partial sum would read as a measured one
    values = [u.get(key) for u in units]
    if not values or any(v is None for v in values):
        return None
    return sum(values)


def aggregate(units: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of one (agent, skill) group of units."""
    correct = [u for u in units if u.get("correct")]
    summary: dict[str, Any] = {"units": len(units), "tasks": len({u["task"] for u in units}),
                               "correct": len(correct), "correct_rate": len(correct) / len(units) if units else None,
                               "timings_meaningful": any(u.get("timings_meaningful") for u in units)}
    for baseline in BASELINES:
        speeds = [u[f"speedup_{baseline}"] for u in correct if u.get(f"speedup_{baseline}") is not None]
        summary[f"fast_p_{baseline}"] = {str(p): fast_p(units, baseline, p) for p in FAST_P}
        summary[f"geomean_speedup_{baseline}"] = geomean(speeds)
        summary[f"median_speedup_{baseline}"] = statistics.median(speeds) if speeds else None
    pcts = [u["roofline_pct"] for u in correct if u.get("roofline_pct") is not None]
    summary["mean_roofline_pct"] = sum(pcts) / len(pcts) if pcts else None
    summary["totals"] = {key: _total(units, key) for key in COST_KEYS}
    return summary


def aggregates(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for unit in units:
        groups.setdefault((unit["agent"], unit["skill"]), []).append(unit)
    return [{"agent": agent, "skill": skill, **aggregate(group)} for (agent, skill), group in groups.items()]


def _rate(units: list[dict[str, Any]], hit: Callable[[dict[str, Any]], bool]) -> float:
    return sum(1 for u in units if hit(u)) / len(units)


def _fast_1_eager(unit: dict[str, Any]) -> bool:
    return bool(unit.get("correct")) and (unit.get("speedup_eager") or 0.0) > 1.0


def bootstrap_interval(samples: list[float], *, level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> list[float] | None:
    """A percentile bootstrap interval of the samples' mean, seeded so that a rerun reports the same
    interval. None with fewer than two samples: one run says nothing about how much runs vary."""
    if len(samples) < 2:
        return None
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(samples, k=len(samples))) / len(samples) for _ in range(resamples))
    tail = (1.0 - level) / 2
    return [means[int(tail * resamples)], means[min(resamples - 1, int((1.0 - tail) * resamples))]]


def _spread(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0, "min": None, "median": None, "max": None, "mean": None, "ci95": None}
    return {"n": len(samples), "min": min(samples), "median": statistics.median(samples), "max": max(samples),
            "mean": sum(samples) / len(samples), "ci95": bootstrap_interval(samples)}


def skill_lifts(units: list[dict[str, Any]], *, without: str = "none") -> list[dict[str, Any]]:
    """Per agent and skill, the skill's lift: its rate minus the same agent's rate without a skill.

    Only tasks both sides ran count. One sample per run index (run r with the skill against run r without),
    so the spread is over repeats: ``n`` samples, their min, median, max and mean, and ``ci95``: a seeded
    bootstrap 95 % interval of the mean over runs (None below two runs). ``fast_1_eager`` is None when
    neither side was timed (a CPU eval).
    """
    by_key: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for unit in units:
        by_key[(unit["agent"], unit["skill"], unit["task"], unit["run"])] = unit
    lifts = []
    for agent, skill in dict.fromkeys((a, s) for a, s, _, _ in by_key if s != without):
        pairs = [(u, by_key[(agent, without, t, r)]) for (a, s, t, r), u in by_key.items()
                 if (a, s) == (agent, skill) and (agent, without, t, r) in by_key]
        if not pairs:
            continue  # no run of this agent without a skill: nothing to compare against
        timed = any(u.get("timings_meaningful") or b.get("timings_meaningful") for u, b in pairs)
        per_run: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for with_, base in pairs:
            per_run.setdefault(with_["run"], []).append((with_, base))
        lift = {"agent": agent, "skill": skill, "without": without, "tasks": len({u["task"] for u, _ in pairs}),
                "runs": sorted(per_run)}
        for name, hit in (("correct_rate", lambda u: bool(u.get("correct"))), ("fast_1_eager", _fast_1_eager)):
            if name == "fast_1_eager" and not timed:
                lift[name] = None
                continue
            samples = [_rate([w for w, _ in group], hit) - _rate([b for _, b in group], hit)
                       for group in per_run.values()]
            lift[name] = _spread(samples)
        lifts.append(lift)
    return lifts
