"""The outcome of a run in one sentence: the best kernel against the fastest baseline of the final bench.

A verified kernel slower than its fastest baseline is a finding, not a result (DESIGN.md, principle 6):
the verdict says so ("verified but 3.30x slower than torch.compile: not worth using"), and ``package``
refuses such a run unless asked. The exit code of ``optimize`` stays 0 for a verified kernel: slower is
reported in the verdict, not as an error.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

FASTER, SLOWER, UNTIMED, NONE = "faster", "slower", "untimed", "none"
NAMES = {"compile": "torch.compile", "eager": "eager PyTorch", "native": "the native PyTorch op"}


def baseline_name(kind: str) -> str:
    return NAMES.get(kind, kind)


def per_shape(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """For every timed shape: the fastest baseline, its time, the kernel's, and their ratio (> 1: faster)."""
    shapes = []
    for row in bench.get("rows", []):
        timings = row.get("timings") or {}
        kernel = (timings.get("candidate") or {}).get("median_ms")
        baselines = {n: t["median_ms"] for n, t in timings.items()
                     if n not in ("candidate", "candidate_repeat") and t and t.get("median_ms")}
        if not kernel or not baselines:
            continue
        fastest = min(baselines, key=baselines.get)
        shapes.append({"knobs": row.get("knobs"), "dtype": row.get("dtype"), "fastest_baseline": fastest,
                       "baseline_ms": baselines[fastest], "kernel_ms": kernel, "ratio": baselines[fastest] / kernel})
    return shapes


def judge(*, accepted: bool, device: str, bench: dict[str, Any] | None, cuts: list[str] | None = None,
          untimed_why: str | None = None) -> dict[str, Any]:
    """The verdict (JSON) of a run whose best kernel was ``accepted`` and benchmarked as ``bench`` (None:
    not benchmarked; ``untimed_why`` says why). ``cuts``: what the time budget left out."""
    cuts = list(cuts or [])
    if not accepted:
        return _verdict(NONE, "no verified kernel", cuts)
    # a bench with failures has no timings to trust: the caller says why in ``untimed_why``
    timed = (bench is not None and bench.get("timings_meaningful", True) and not bench.get("failures")
             and not device.startswith("cpu"))
    shapes = per_shape(bench) if timed else []
    if not shapes:
        why = untimed_why or ("untimed on CPU: the Triton interpreter's timings mean nothing; run on a GPU to "
                              "compare with the baselines" if device.startswith("cpu")
                              else "not benchmarked: the final benchmark failed" if bench is not None
                              else "not benchmarked: the final benchmark did not run")
        return _verdict(UNTIMED, f"verified; {why}", cuts)
    ratio = math.exp(sum(math.log(s["ratio"]) for s in shapes) / len(shapes))
    name = Counter(s["fastest_baseline"] for s in shapes).most_common(1)[0][0]
    slower = sum(1 for s in shapes if s["ratio"] < 1.0)
    where = f"geomean over {len(shapes)} shape(s)" if len(shapes) > 1 else "at its one shape"
    if ratio >= 1.0:
        sentence = f"faster than {baseline_name(name)} by {ratio:.2f}x ({where}"
        sentence += f"; slower on {slower} of them)" if slower else ")"
        status = FASTER
    else:
        sentence = (f"verified but {1 / ratio:.2f}x slower than {baseline_name(name)} ({where}): not worth using")
        status = SLOWER
    return _verdict(status, sentence, cuts, fastest_baseline=name, ratio_geomean=ratio, slower_shapes=slower,
                    shapes=shapes)


def _verdict(status: str, sentence: str, cuts: list[str], **timed: Any) -> dict[str, Any]:
    if cuts:
        sentence += "; the time budget cut " + "; ".join(cuts)
    return {"status": status, "sentence": sentence, "fastest_baseline": timed.get("fastest_baseline"),
            "ratio_geomean": timed.get("ratio_geomean"), "slower_shapes": timed.get("slower_shapes", 0),
            "shapes": timed.get("shapes", []), "budget_cuts": cuts}


def refusal(verdict: dict[str, Any] | None) -> str | None:
    """Why a run must not be packaged without ``--allow-slower`` (None: nothing against it)."""
    if not verdict or verdict.get("status") != SLOWER:
        return None
    return (f"its best kernel is {1 / verdict['ratio_geomean']:.2f}x slower than "
            f"{baseline_name(verdict['fastest_baseline'])} (the run's final benchmark), so it is not worth "
            "packaging; pass --allow-slower to package it anyway.")
