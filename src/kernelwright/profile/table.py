"""The ranked table: per (module class, op), calls, time and share, bytes and FLOPs, achieved rates against
the measured roofline, the bound, and what the model would gain if that op ran at the roofline (Amdahl).

Calls are counted per whole step; where the steps disagree the row says so (``calls_range``) and ``calls``
is the count most steps had. An op whose bytes are unknown (no tensor shapes recorded, a list of tensors)
is bound by ``unknown`` and claims no saving: a roofline needs the bytes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kernelwright.bench.roofline import LAUNCH_BOUND_MS, bound
from kernelwright.profile.attribute import OpSample
from kernelwright.profile.costs import op_bytes, op_flops

SHAPES_SHOWN = 3


def rows(samples: list[OpSample], *, steps: int, total_us: float, ceilings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (module class, op), per step, ranked by the savings at the roofline."""
    groups: dict[tuple[str, str], list[OpSample]] = defaultdict(list)
    for sample in samples:
        groups[(sample.owner_class, sample.op)].append(sample)
    total_ms = total_us / 1e3 / steps
    out = [_row(cls, op, group, steps, total_ms, ceilings) for (cls, op), group in groups.items()]
    out.sort(key=lambda r: (-r["savings_ms"], -r["time_ms"]))
    cumulative = 0.0
    for rank, row in enumerate(out, 1):
        cumulative += row["share"]
        row["rank"], row["cumulative_share"] = rank, cumulative
    return out


def _row(cls: str, op: str, group: list[OpSample], steps: int, total_ms: float, ceilings: dict[str, Any]) -> dict:
    time_ms = sum(s.time_us for s in group) / 1e3 / steps
    nbytes = sum(op_bytes(s.op, s.shapes, s.dtypes, s.concrete) for s in group) // steps
    flops = sum(op_flops(s.op, s.shapes, s.dtypes, s.concrete) for s in group) // steps
    calls, calls_range = per_step_calls(group, steps)
    kernel_us = _median_kernel_us(group)
    roofline_ms, kind = ideal(nbytes, flops, len(group) / steps, ceilings, kernel_us=kernel_us)
    savings_ms = max(0.0, time_ms - roofline_ms) if roofline_ms is not None else 0.0
    shapes = list(dict.fromkeys(_shape_text(s) for s in group))
    return {
        "module_class": cls, "op": op, "modules": sorted({s.owner_name for s in group})[:SHAPES_SHOWN],
        "calls": calls, **({"calls_range": calls_range} if calls_range else {}),
        "time_ms": time_ms, "share": time_ms / total_ms if total_ms else 0.0,
        "shapes": shapes[:SHAPES_SHOWN], "more_shapes": max(0, len(shapes) - SHAPES_SHOWN),
        "bytes": nbytes, "flops": flops,
        "gbps": nbytes / (time_ms * 1e-3) / 1e9 if time_ms else 0.0,
        "tflops": flops / (time_ms * 1e-3) / 1e12 if time_ms else 0.0,
        "roofline_ms": roofline_ms,
        "fraction_of_roofline": roofline_ms / time_ms if time_ms and roofline_ms is not None else None,
        "bound": kind, "savings_ms": savings_ms, "median_kernel_us": kernel_us,
        "speedup_if_roofline": total_ms / (total_ms - savings_ms) if total_ms > savings_ms else float("inf"),
        "kernels": sorted({k for s in group for k in s.kernels})[:SHAPES_SHOWN],
    }


def per_step_calls(group: list[OpSample], steps: int) -> tuple[int, list[int] | None]:
    """(the count most steps had, [fewest, most] where the steps differ, else None): a count of whole
    steps, never a mean."""
    counts = [0] * steps
    for sample in group:
        if 0 <= sample.step < steps:
            counts[sample.step] += 1
    most = max(counts.count(c) for c in counts)
    usual = max(c for c in counts if counts.count(c) == most)
    return usual, (None if min(counts) == max(counts) else [min(counts), max(counts)])


def _median_kernel_us(group: list[OpSample]) -> float | None:
    """The median kernel's duration in us (None without kernels: the CPU)."""
    durations = sorted(us for s in group for us in s.kernel_us)
    return durations[len(durations) // 2] if durations else None


def ideal(nbytes: float, flops: float, calls: float, ceilings: dict[str, Any],
          kernel_us: float | None = None) -> tuple[float | None, str]:
    """(ms at the roofline, bound) for ``calls`` calls moving ``nbytes`` and doing ``flops`` in all; (None,
    ``unknown``) when neither is known. No call runs faster than the device's floor for one kernel
    (``min_call_ms``: a launch on a GPU, none on the CPU). The bound is ``launch`` when the kernels are each
    shorter than a few microseconds (``kernel_us``, their median), otherwise whichever ceiling an ideal
    kernel meets first; on the CPU (no kernels) it is judged per call (145 tiny norms are launch-bound
    however many bytes they move together)."""
    if not nbytes and not flops:
        return None, "unknown"
    gbps, tflops = ceilings.get("copy_gbps"), ceilings.get("tflops")
    calls = max(calls, 1e-9)
    memory_ms = nbytes / (gbps * 1e9) * 1e3 if gbps else 0.0
    compute_ms = flops / (tflops * 1e12) * 1e3 if tflops and flops else 0.0
    floor_ms = calls * ceilings.get("min_call_ms", 0.0)
    if kernel_us is None or not gbps:
        kind = bound(int(nbytes / calls), int(flops / calls), gbps=gbps, tflops=tflops)
    elif kernel_us < LAUNCH_BOUND_MS * 1e3:
        kind = "launch"
    else:
        kind = "compute" if compute_ms > memory_ms else "memory"
    return max(memory_ms, compute_ms, floor_ms), kind


def _shape_text(sample: OpSample) -> str:
    tensors = [(shape, dtype) for shape, dtype in zip(sample.shapes, sample.dtypes)
               if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape)]
    return ", ".join("x".join(map(str, shape)) + f" {_short(dtype)}" for shape, dtype in tensors)


def _short(dtype: str) -> str:
    return {"float": "f32", "c10::BFloat16": "bf16", "c10::Half": "f16", "double": "f64", "long int": "i64",
            "int": "i32", "bool": "bool"}.get(dtype, dtype)


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (module class, op) in either profile: time per step before and after, and the change; ops that
    appear in one profile only (a replaced op, the kernel that replaced it) have the other side empty."""
    old = {(r["module_class"], r["op"]): r for r in before["rows"]}
    new = {(r["module_class"], r["op"]): r for r in after["rows"]}
    out = []
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        ta, tb = (a["time_ms"] if a else 0.0), (b["time_ms"] if b else 0.0)
        out.append({"module_class": key[0], "op": key[1], "before_ms": ta if a else None,
                    "after_ms": tb if b else None, "before_calls": a["calls"] if a else 0,
                    "after_calls": b["calls"] if b else 0, "delta_ms": tb - ta,
                    "speedup": ta / tb if a and b and tb else None})
    out.sort(key=lambda r: r["delta_ms"])
    return out


def targets(op_rows: list[dict[str, Any]], capture, ceilings: dict[str, Any], total_ms: float) -> list[dict[str, Any]]:
    """Per module class (or modeling function): its ops together, as one fused kernel would replace them.
    A leaf module's or modeling function's bytes are its minimal bytes (inputs, parameters and outputs once
    each, from the shapes it was called with), not the sum of its ops' traffic: that is what a fused kernel
    must move."""
    by_owner: dict[str, list[dict]] = defaultdict(list)
    for row in op_rows:
        by_owner[row["module_class"]].append(row)
    out = []
    for owner, group in by_owner.items():
        time_ms = sum(r["time_ms"] for r in group)
        leaf = owner in capture.calls
        nbytes = capture.bytes[owner] if leaf else sum(r["bytes"] for r in group)
        flops = sum(r["flops"] for r in group)
        calls = capture.calls.get(owner) or max(r["calls"] for r in group)
        medians = [r["median_kernel_us"] for r in group if r.get("median_kernel_us") is not None]
        # a fused kernel is launch-bound only if every op it replaces already was
        roofline_ms, kind = ideal(nbytes, flops, calls, ceilings, kernel_us=max(medians) if medians else None)
        savings_ms = max(0.0, time_ms - roofline_ms) if roofline_ms is not None else 0.0
        out.append({
            "module_class": owner, "leaf": leaf, "calls": calls,
            "modules": capture.names.get(owner) or group[0]["modules"], "time_ms": time_ms,
            "share": sum(r["share"] for r in group), "bytes": nbytes, "flops": flops,
            "gbps": nbytes / (time_ms * 1e-3) / 1e9 if time_ms else 0.0, "roofline_ms": roofline_ms,
            "fraction_of_roofline": roofline_ms / time_ms if time_ms and roofline_ms is not None else None,
            "bound": kind, "savings_ms": savings_ms,
            "speedup_if_roofline": total_ms / (total_ms - savings_ms) if total_ms > savings_ms else float("inf"),
            "ops": [r["op"] for r in sorted(group, key=lambda r: -r["time_ms"])],
            "signatures": [[list(shape), dtype] for sig in capture.signatures.get(owner, [])[:SHAPES_SHOWN]
                           for shape, dtype in sig],
        })
    out.sort(key=lambda r: (-r["savings_ms"], -r["time_ms"]))
    return out
