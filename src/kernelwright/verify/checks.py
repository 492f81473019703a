"""Correctness checks of one case's outputs against the float64 reference.

Each check returns ``Failure`` objects (a named check, one sentence, and the numbers a reproducer
needs), never a bare boolean: the worst index, the values there, how many elements failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernelwright.verify.tolerance import Tolerance, calibrated, norm_bound


@dataclass
class Failure:
    check: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, **self.details}


@dataclass
class ErrorStats:
    rel_err: float
    max_abs_err: float
    norm_bound: float
    excess: float  # worst ratio of error to bound over both tests; > 1 fails
    n_bad: int
    n_checked: int
    worst_index: list[int]
    worst_out: float
    worst_ref: float
    n_nonfinite: int  # non-finite in out where the reference is finite
    first_nonfinite_index: list[int]
    n_skipped: int  # elements where the task's own Model overflows the dtype: outside the op's range


CHUNK_ELEMENTS = 1 << 25  # elements compared at a time: each float64 temporary of a slice is ~270 MB


def _slices(tensors: list, device=None):
    """``(start, [float64 slice of each tensor])`` over the flattened tensors, CHUNK_ELEMENTS at a time,
    each slice on ``device`` (default: where the tensor lives). A benchmark-size output compared whole in
    float64 needs many times its own size in temporaries; a slice needs a bounded amount."""
    import torch

    flats = [t.reshape(-1) for t in tensors]  # a copy only for a non-contiguous output
    total = flats[0].numel() if flats else 0
    for start in range(0, total, CHUNK_ELEMENTS):
        end = min(total, start + CHUNK_ELEMENTS)
        yield start, [f[start:end].to(device=device or f.device, dtype=torch.float64) for f in flats]


def error_stats(out, ref, eager, tol: Tolerance, device=None) -> ErrorStats:
    """Compare ``out`` to ``ref`` where both the reference and the task's Model are finite, slice by slice
    (on ``device`` when given): a first pass for the norms and counts, a second for the elementwise
    bound, which needs the reference's root-mean-square over the whole output."""
    import torch

    ref_sq = diff_sq = max_diff = 0.0
    n_domain = n_checked = n_nonfinite = n_skipped = 0
    first_nonfinite = None
    for start, (o, r, e) in _slices([out, ref, eager], device):
        domain = torch.isfinite(r) & torch.isfinite(e)
        finite_out = torch.isfinite(o)
        nonfinite = domain & ~finite_out
        checked = domain & finite_out
        diff = torch.where(checked, (o - r).abs(), 0.0)
        ref_sq += float(torch.where(domain, r, 0.0).square().sum())
        diff_sq += float(diff.square().sum())
        max_diff = max(max_diff, float(diff.max()))
        n_domain += int(domain.sum())
        n_checked += int(checked.sum())
        n_skipped += int((~domain & torch.isfinite(r)).sum())
        if first_nonfinite is None and nonfinite.any():
            first_nonfinite = start + int(nonfinite.nonzero()[0, 0])
        n_nonfinite += int(nonfinite.sum())
    ref_norm, diff_norm = ref_sq ** 0.5, diff_sq ** 0.5
    rel = diff_norm / ref_norm if ref_norm > 0 else (0.0 if diff_norm == 0 else float("inf"))
    rms = ref_norm / max(1, n_domain) ** 0.5
    worst, max_ratio, n_bad, worst_out, worst_ref = 0, -1.0, 0, 0.0, 0.0
    for start, (o, r, e) in _slices([out, ref, eager], device):
        checked = torch.isfinite(r) & torch.isfinite(e) & torch.isfinite(o)
        diff = torch.where(checked, (o - r).abs(), 0.0)
        bound = tol.atol * rms + tol.rtol * r.abs()
        ratio = torch.where(bound > 0, diff / bound.clamp_min(1e-300), torch.where(diff > 0, float("inf"), 0.0))
        ratio = torch.where(checked, ratio, 0.0)
        n_bad += int((ratio > 1).sum())
        at = int(ratio.argmax())
        if float(ratio[at]) > max_ratio:  # strictly: the first worst element overall, as one argmax would
            max_ratio, worst = float(ratio[at]), start + at
            worst_out, worst_ref = float(o[at]), float(r[at])
    shape = list(ref.shape)

    def unravel(flat: int) -> list[int]:
        return [int(i) for i in torch.unravel_index(torch.tensor(flat), shape)] if shape else []

    rel_bound = norm_bound(tol, n_checked)
    return ErrorStats(
        rel_err=rel, max_abs_err=max_diff, norm_bound=rel_bound,
        excess=max(rel / rel_bound if rel_bound else 0.0, max(max_ratio, 0.0)),
        n_bad=n_bad, n_checked=n_checked, worst_index=unravel(worst), worst_out=worst_out, worst_ref=worst_ref,
        n_nonfinite=n_nonfinite,
        first_nonfinite_index=unravel(first_nonfinite) if first_nonfinite is not None else [],
        n_skipped=n_skipped,
    )


def special_values_match(out, ref, eager=None, device=None) -> bool:
    """Where the reference is NaN or ±inf, the output must be the same special value (only where the
    task's own Model in the case dtype produces it too: the op defines it)."""
    import torch

    for _, (o, r, *e) in _slices([out, ref] + ([eager] if eager is not None else []), device):
        special = ~torch.isfinite(r)
        if e:
            special &= (torch.isnan(e[0]) & torch.isnan(r)) | (e[0] == r)
        if not special.any():
            continue
        same_nan = torch.isnan(r[special]) == torch.isnan(o[special])
        same_inf = torch.where(torch.isinf(r[special]), o[special] == r[special], True)
        if not bool((same_nan & same_inf).all()):
            return False
    return True


def check_structure(outs: list, eagers: list, metas: list | None = None, device: str | None = None) -> list[Failure]:
    """Output count, shapes and dtypes must be those of the task's Model in the same dtype; outputs must
    live on the case's device and, unless the Model's do, must not overlap themselves or each other
    (``metas``: what the worker saw of the live outputs)."""
    import torch

    if len(outs) != len(eagers):
        return [Failure("output_count", f"ModelNew returned {len(outs)} output(s); Model returns {len(eagers)}")]
    failures = []
    for i, (o, e) in enumerate(zip(outs, eagers)):
        if list(o.shape) != list(e.shape):
            failures.append(Failure("output_shape", f"output {i} has shape {list(o.shape)}; Model gives {list(e.shape)}",
                                    {"output": i}))
        elif o.dtype != e.dtype:
            failures.append(Failure("output_dtype", f"output {i} has dtype {o.dtype}; Model gives {e.dtype}",
                                    {"output": i}))
    for i, (meta, e) in enumerate(zip(metas or [], eagers)):
        if device is not None and torch.device(meta["device"]).type != torch.device(device).type:
            failures.append(Failure("output_device", f"output {i} is on {meta['device']}; the inputs were on {device}",
                                    {"output": i}))
        eager_overlaps = bool(e.numel() and torch._debug_has_internal_overlap(e) == 1)
        if meta.get("internal_overlap") and not eager_overlaps:
            failures.append(Failure("overlapping_output",
                                    f"output {i} has strides {meta['stride']} under which elements share memory",
                                    {"output": i, "stride": meta["stride"]}))
        if meta.get("overlaps"):
            failures.append(Failure("overlapping_output",
                                    f"output {i} shares memory with output(s) {meta['overlaps']}", {"output": i}))
    return failures


def check_values(outs: list, refs: list, eagers: list, base: Tolerance,
                 device=None) -> tuple[list[Failure], list[dict]]:
    """Numerical checks of each output; the tolerance is calibrated on the task's own Model. Tensors may
    live on the host; ``device`` is where their slices are compared (default: where they live)."""
    failures, stats = [], []
    for i, (out, ref, eager) in enumerate(zip(outs, refs, eagers)):
        eager_stats = error_stats(eager, ref, eager, base, device)
        tol = calibrated(base, eager_stats.excess)
        s = error_stats(out, ref, eager, tol, device)
        entry = {"output": i, "rel_err": s.rel_err, "max_abs_err": s.max_abs_err, "eager_rel_err": eager_stats.rel_err,
                 "tolerance": tol.as_dict(), "elements": s.n_checked, "skipped_out_of_range": s.n_skipped}
        stats.append(entry)
        if s.n_nonfinite:
            failures.append(Failure(
                "nonfinite_output",
                f"output {i} has {s.n_nonfinite} NaN/inf value(s) where the reference is finite "
                f"(first at index {s.first_nonfinite_index})",
                {"output": i, "worst_index": s.first_nonfinite_index, "count": s.n_nonfinite}))
        if not special_values_match(out, ref, eager, device):
            failures.append(Failure("special_values", f"output {i} does not reproduce the reference's NaN/inf values",
                                    {"output": i}))
        constant = _constant_where_reference_varies(out, ref, eager, tol, device)
        if constant is not None:
            failures.append(Failure(
                "constant_output",
                f"output {i} is the constant {constant:.6g} where the reference varies; outputs this small or "
                "flat are judged against their own spread, not an absolute tolerance", {"output": i, "got": constant}))
        elif s.excess > 1:
            failures.append(Failure(
                "mismatch",
                f"output {i} differs from the float64 reference: relative error {s.rel_err:.3g} "
                f"(bound {s.norm_bound:.3g}), {s.n_bad} of {s.n_checked} elements outside atol·rms+rtol·|ref|; "
                f"worst at {s.worst_index}: got {s.worst_out:.6g}, expected {s.worst_ref:.6g}",
                {"output": i, "rel_err": s.rel_err, "worst_index": s.worst_index, "got": s.worst_out,
                 "expected": s.worst_ref, "bad_elements": s.n_bad, "tolerance": tol.as_dict()}))
    return failures, stats


def _constant_where_reference_varies(out, ref, eager, tol: Tolerance, device=None) -> float | None:
    """The constant value of ``out`` if it is constant (zero included) over the elements where the
    reference is finite and varies by more than the tolerance; else None. Catches outputs that a loose
    or widened tolerance would pass, whatever their magnitude."""
    import torch

    count, first, r_abs = 0, None, 0.0
    o_min = r_min = float("inf")
    o_max = r_max = -float("inf")
    for _, (o, r, e) in _slices([out, ref, eager], device):
        domain = torch.isfinite(r) & torch.isfinite(e) & torch.isfinite(o)
        o, r = o[domain], r[domain]
        if not o.numel():
            continue
        first = float(o[0]) if first is None else first
        count += o.numel()
        o_min, o_max = min(o_min, float(o.min())), max(o_max, float(o.max()))
        r_min, r_max = min(r_min, float(r.min())), max(r_max, float(r.max()))
        r_abs = max(r_abs, float(r.abs().max()))
    if count < 2:
        return None
    scale = max(r_abs, 1e-300)
    if o_max != o_min or r_max - r_min <= 4 * max(tol.rtol, tol.atol, tol.norm) * scale:
        return None
    return first


def check_determinism(runs: list[list], device=None) -> list[Failure]:
    """Two runs on identical inputs must agree bit for bit (races and uninitialised reads do not)."""
    import torch

    failures = []
    for first, again in zip(runs, runs[1:]):
        for i, (a, b) in enumerate(zip(first, again)):
            where = _first_difference(a, b, device)
            if where is not None:
                failures.append(Failure("nondeterministic",
                                        f"output {i} differs between two runs on the same inputs (first differing "
                                        f"region at {where}); a race or a read of uninitialised memory",
                                        {"output": i, "worst_index": where}))
    return failures


def _first_difference(a, b, device=None) -> list[int] | None:
    """None when ``a`` and ``b`` are equal bit for bit (NaN where NaN); else the index of their largest
    difference ([] for a scalar or a shape mismatch). Compared in slices of their own dtype."""
    import torch

    if a.shape != b.shape:
        return []
    fa, fb = a.reshape(-1), b.reshape(-1)
    worst, largest = None, -1.0
    for start in range(0, fa.numel(), CHUNK_ELEMENTS):
        x, y = (f[start:start + CHUNK_ELEMENTS].to(device or f.device) for f in (fa, fb))
        if torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)) and torch.equal(x.isnan(), y.isnan()):
            continue
        diff = (x.double() - y.double()).abs().nan_to_num(float("inf"))
        at = int(diff.argmax())
        if float(diff[at]) > largest:
            worst, largest = start + at, float(diff[at])
    if worst is None:
        return None
    return [int(j) for j in torch.unravel_index(torch.tensor(worst), a.shape)] if a.dim() else []
