"""The analyst: where a benchmarked kernel sits against the roofline, and which bottleneck it hits.

It needs no model: the numbers come from the bench result (minimal bytes, measured copy bandwidth,
FLOPs, baselines). Its ``profile_report.json`` feeds the planner and the writers.

Nsight Compute: when ``ncu`` is on PATH the report says so, but metrics are not collected yet — running
``ncu`` has to happen inside the sandbox (a profiling mode of the worker), which does not exist yet.
"""

from __future__ import annotations

import math
import shutil
from typing import Any

SCHEMA = "kernelwright.profile/1"


def _median(row: dict, name: str) -> float | None:
    t = (row.get("timings") or {}).get(name)
    return t.get("median_ms") if t else None


def shape_summary(row: dict[str, Any]) -> dict[str, Any]:
    """One bench row reduced to what a kernel engineer reads first."""
    cand = _median(row, "candidate")
    baselines = {n: t["median_ms"] for n, t in (row.get("timings") or {}).items()
                 if n not in ("candidate", "candidate_repeat")}
    fastest = min(baselines, key=baselines.get) if baselines else None
    out = {"knobs": row.get("knobs"), "dtype": row.get("dtype"), "bytes": row.get("bytes"),
           "flops": row.get("flops"), "candidate_ms": cand, "baselines_ms": baselines, "fastest_baseline": fastest,
           "speedup_vs_fastest": (baselines[fastest] / cand) if fastest and cand else None,
           "gbps": row.get("gbps"), "fraction_of_copy": row.get("fraction_of_copy"), "bound": row.get("bound")}
    return out


def score(bench_json: dict[str, Any] | None) -> float | None:
    """Geometric mean over shapes of the speedup over the fastest baseline (higher is better)."""
    if not bench_json or not bench_json.get("ok") or not bench_json.get("rows"):
        return None
    ratios = [shape_summary(r)["speedup_vs_fastest"] for r in bench_json["rows"]]
    if any(r is None or r <= 0 for r in ratios):
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def roofline_fraction(bench_json: dict[str, Any] | None) -> float | None:
    """The worst shape's fraction of the measured copy bandwidth (None without a ceiling)."""
    fracs = [r.get("fraction_of_copy") for r in (bench_json or {}).get("rows", [])]
    return min(fracs) if fracs and all(f is not None for f in fracs) else None


def one_line(s: dict[str, Any]) -> str:
    knobs = "×".join(str(v) for v in (s["knobs"] or {}).values())
    parts = [f"{knobs} {s['dtype']}: {s['candidate_ms']:.4f} ms" if s["candidate_ms"] is not None else knobs]
    if s["speedup_vs_fastest"]:
        parts.append(f"{s['speedup_vs_fastest']:.2f}× vs {s['fastest_baseline']}")
    if s["gbps"]:
        parts.append(f"{s['gbps']:.0f} GB/s")
    if s["fraction_of_copy"] is not None:
        parts.append(f"{100 * s['fraction_of_copy']:.0f}% of copy bandwidth")
    if s["bound"]:
        parts.append(f"{s['bound']}-bound")
    return ", ".join(parts)


def profile_report(name: str, bench_json: dict[str, Any], *, device: str) -> dict[str, Any]:
    shapes = [shape_summary(r) for r in bench_json.get("rows", [])]
    bounds = sorted({s["bound"] for s in shapes if s["bound"]})
    frac = roofline_fraction(bench_json)
    if not bench_json.get("timings_meaningful", device.startswith("cuda")):
        verdict = "timings are not meaningful on this device (Triton interpreter); no bottleneck can be named"
    elif frac is None:
        verdict = "no measured bandwidth ceiling; compare against the baselines only"
    elif frac >= 0.85:
        verdict = f"near the memory roofline ({100 * frac:.0f}% of copy bandwidth at the worst shape): little headroom"
    elif "launch" in bounds:
        verdict = "launch-bound shapes: fuse work or use fewer, larger programs / CUDA graphs"
    else:
        verdict = (f"{100 * frac:.0f}% of copy bandwidth at the worst shape: memory access pattern, vector width "
                   "and occupancy are the levers")
    return {"schema": SCHEMA, "candidate": name, "device": device, "score": score(bench_json),
            "roofline_fraction": frac, "bound": bounds, "verdict": verdict, "shapes": shapes,
            "ncu": {"available": shutil.which("ncu") is not None,
                    "collected": False, "note": "Nsight Compute metrics need a profiling mode in the sandbox worker; "
                                                "not collected"}}


def analysis(bench_json: dict[str, Any], *, device: str) -> dict[str, Any]:
    """The task's analysis for prompts, from the first benchmark: baselines, roofline, bound per shape."""
    shapes = [shape_summary(r) for r in bench_json.get("rows", [])]
    out = {"baselines_ms": [{"knobs": s["knobs"], "dtype": s["dtype"], **s["baselines_ms"]} for s in shapes],
           "minimal_bytes": [s["bytes"] for s in shapes], "flops": [s["flops"] for s in shapes],
           "bound": [s["bound"] for s in shapes], "ceilings": bench_json.get("ceilings"),
           "timings_meaningful": bench_json.get("timings_meaningful", device.startswith("cuda"))}
    copy = (bench_json.get("ceilings") or {}).get("copy_gbps")
    if copy:
        out["roofline_ms"] = [s["bytes"] / (copy * 1e9) * 1e3 for s in shapes if s["bytes"]]
    return out
