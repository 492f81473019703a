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


def error_stats(out, ref, eager, tol: Tolerance) -> ErrorStats:
    """Compare ``out`` to ``ref`` where both the reference and the task's Model are finite."""
    import torch

    out64, ref64 = out.double().flatten(), ref.double().flatten()
    domain = torch.isfinite(ref64) & torch.isfinite(eager.double().flatten())
    finite_out = torch.isfinite(out64)
    nonfinite = domain & ~finite_out
    checked = domain & finite_out
    diff = torch.zeros_like(ref64)
    diff[checked] = (out64[checked] - ref64[checked]).abs()
    ref_norm = ref64[domain].norm().item() if domain.any() else 0.0
    diff_norm = diff.norm().item()
    rel = diff_norm / ref_norm if ref_norm > 0 else (0.0 if diff_norm == 0 else float("inf"))
    rms = ref_norm / max(1, int(domain.sum())) ** 0.5
    bound = tol.atol * rms + tol.rtol * ref64.abs()
    ratio = torch.where(bound > 0, diff / bound.clamp_min(1e-300), torch.where(diff > 0, float("inf"), 0.0))
    ratio[~checked] = 0
    worst = int(ratio.argmax()) if ratio.numel() else 0
    shape = list(ref.shape)

    def unravel(flat: int) -> list[int]:
        return [int(i) for i in torch.unravel_index(torch.tensor(flat), shape)] if shape else []

    first_nonfinite = int(nonfinite.nonzero()[0, 0]) if nonfinite.any() else None
    rel_bound = norm_bound(tol, int(checked.sum()))
    return ErrorStats(
        rel_err=rel, max_abs_err=float(diff.max()) if diff.numel() else 0.0, norm_bound=rel_bound,
        excess=max(rel / rel_bound if rel_bound else 0.0, float(ratio.max()) if ratio.numel() else 0.0),
        n_bad=int((ratio > 1).sum()), n_checked=int(checked.sum()), worst_index=unravel(worst),
        worst_out=float(out64[worst]) if out64.numel() else 0.0, worst_ref=float(ref64[worst]) if ref64.numel() else 0.0,
        n_nonfinite=int(nonfinite.sum()),
        first_nonfinite_index=unravel(first_nonfinite) if first_nonfinite is not None else [],
        n_skipped=int((~domain & torch.isfinite(ref64)).sum()),
    )


def special_values_match(out, ref, eager=None) -> bool:
    """Where the reference is NaN or ±inf, the output must be the same special value (only where the
    task's own Model in the case dtype produces it too: the op defines it)."""
    import torch

    out64, ref64 = out.double().flatten(), ref.double().flatten()
    special = ~torch.isfinite(ref64)
    if eager is not None:
        e64 = eager.double().flatten()
        special &= (torch.isnan(e64) & torch.isnan(ref64)) | (e64 == ref64)
    if not special.any():
        return True
    same_nan = torch.isnan(ref64[special]) == torch.isnan(out64[special])
    same_inf = torch.where(torch.isinf(ref64[special]), out64[special] == ref64[special], True)
    return bool((same_nan & same_inf).all())


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


def check_values(outs: list, refs: list, eagers: list, base: Tolerance) -> tuple[list[Failure], list[dict]]:
    """Numerical checks of each output; the tolerance is calibrated on the task's own Model."""
    failures, stats = [], []
    for i, (out, ref, eager) in enumerate(zip(outs, refs, eagers)):
        eager_stats = error_stats(eager, ref, eager, base)
        tol = calibrated(base, eager_stats.excess)
        s = error_stats(out, ref, eager, tol)
        entry = {"output": i, "rel_err": s.rel_err, "max_abs_err": s.max_abs_err, "eager_rel_err": eager_stats.rel_err,
                 "tolerance": tol.as_dict(), "elements": s.n_checked, "skipped_out_of_range": s.n_skipped}
        stats.append(entry)
        if s.n_nonfinite:
            failures.append(Failure(
                "nonfinite_output",
                f"output {i} has {s.n_nonfinite} NaN/inf value(s) where the reference is finite "
                f"(first at index {s.first_nonfinite_index})",
                {"output": i, "worst_index": s.first_nonfinite_index, "count": s.n_nonfinite}))
        if not special_values_match(out, ref, eager):
            failures.append(Failure("special_values", f"output {i} does not reproduce the reference's NaN/inf values",
                                    {"output": i}))
        constant = _constant_where_reference_varies(out, ref, eager, tol)
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


def _constant_where_reference_varies(out, ref, eager, tol: Tolerance) -> float | None:
    """The constant value of ``out`` if it is constant (zero included) over the elements where the
    reference is finite and varies by more than the tolerance; else None. Catches outputs that a loose
    or widened tolerance would pass, whatever their magnitude."""
    import torch

    out64, ref64 = out.double().flatten(), ref.double().flatten()
    domain = torch.isfinite(ref64) & torch.isfinite(eager.double().flatten()) & torch.isfinite(out64)
    if int(domain.sum()) < 2:
        return None
    o, r = out64[domain], ref64[domain]
    spread = (r.max() - r.min()).item()
    scale = max(r.abs().max().item(), 1e-300)
    if o.max().item() != o.min().item() or spread <= 4 * max(tol.rtol, tol.atol, tol.norm) * scale:
        return None
    return float(o[0])


def check_determinism(runs: list[list]) -> list[Failure]:
    """Two runs on identical inputs must agree bit for bit (races and uninitialised reads do not)."""
    import torch

    failures = []
    for first, again in zip(runs, runs[1:]):
        for i, (a, b) in enumerate(zip(first, again)):
            if a.shape != b.shape or not torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) \
                    or not torch.equal(a.isnan(), b.isnan()):
                diff = (a.double() - b.double()).abs().nan_to_num(float("inf")) if a.shape == b.shape else None
                where = [int(j) for j in torch.unravel_index(diff.argmax(), a.shape)] if diff is not None and a.dim() else []
                failures.append(Failure("nondeterministic",
                                        f"output {i} differs between two runs on the same inputs (first differing "
                                        f"region at {where}); a race or a read of uninitialised memory",
                                        {"output": i, "worst_index": where}))
    return failures
