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


# Outputs this small have their relative-norm bound floored at what one element at its elementwise bound gives
SMALL_OUTPUT = 64


class _ErrorAccumulator:
    """``error_stats`` fed slice by slice (flattened float64 slices of out, ref and eager, with the flat index of
    their first element): every slice through ``add_norms`` first, then every slice again through
    ``add_bounds``, whose elementwise bound needs the reference's root-mean-square over the whole output."""

    def __init__(self, shape):
        self.shape = list(shape)
        self.ref_sq = self.diff_sq = self.max_diff = self.ref_max = 0.0
        self.n_domain = self.n_checked = self.n_nonfinite = self.n_skipped = 0
        self.first_nonfinite = None
        self.worst, self.max_ratio, self.n_bad, self.worst_out, self.worst_ref = 0, -1.0, 0, 0.0, 0.0

    def add_norms(self, start: int, o, r, e) -> None:
        import torch

        domain = torch.isfinite(r) & torch.isfinite(e)
        finite_out = torch.isfinite(o)
        nonfinite = domain & ~finite_out
        checked = domain & finite_out
        diff = torch.where(checked, (o - r).abs(), 0.0)
        self.ref_sq += float(torch.where(domain, r, 0.0).square().sum())
        self.ref_max = max(self.ref_max, float(torch.where(domain, r.abs(), 0.0).max()) if r.numel() else 0.0)
        self.diff_sq += float(diff.square().sum())
        self.max_diff = max(self.max_diff, float(diff.max()))
        self.n_domain += int(domain.sum())
        self.n_checked += int(checked.sum())
        self.n_skipped += int((~domain & torch.isfinite(r)).sum())
        if self.first_nonfinite is None and nonfinite.any():
            self.first_nonfinite = start + int(nonfinite.nonzero()[0, 0])
        self.n_nonfinite += int(nonfinite.sum())

    def add_bounds(self, start: int, o, r, e, tol: Tolerance) -> None:
        import torch

        rms = self.ref_sq ** 0.5 / max(1, self.n_domain) ** 0.5
        checked = torch.isfinite(r) & torch.isfinite(e) & torch.isfinite(o)
        diff = torch.where(checked, (o - r).abs(), 0.0)
        bound = tol.atol * rms + tol.rtol * r.abs()
        ratio = torch.where(bound > 0, diff / bound.clamp_min(1e-300), torch.where(diff > 0, float("inf"), 0.0))
        ratio = torch.where(checked, ratio, 0.0)
        self.n_bad += int((ratio > 1).sum())
        at = int(ratio.argmax())
        if float(ratio[at]) > self.max_ratio:  # strictly: the first worst element overall, as one argmax would
            self.max_ratio, self.worst = float(ratio[at]), start + at
            self.worst_out, self.worst_ref = float(o[at]), float(r[at])

    def stats(self, tol: Tolerance) -> ErrorStats:
        ref_norm, diff_norm = self.ref_sq ** 0.5, self.diff_sq ** 0.5
        rel = diff_norm / ref_norm if ref_norm > 0 else (0.0 if diff_norm == 0 else float("inf"))
        rel_bound = norm_bound(tol, self.n_checked)
        if 0 < self.n_checked <= SMALL_OUTPUT and ref_norm > 0:
            # One element at its own elementwise bound must not fail a tiny output's norm test (CI: a correct
            # 13-element bf16 RMSNorm, 0 elements out of bound, rejected at 0.00889 against 0.00888).
            rms = ref_norm / max(1, self.n_domain) ** 0.5
            rel_bound = max(rel_bound, (tol.atol * rms + tol.rtol * self.ref_max) / ref_norm)
        first = self.first_nonfinite
        return ErrorStats(
            rel_err=rel, max_abs_err=self.max_diff, norm_bound=rel_bound,
            excess=max(rel / rel_bound if rel_bound else 0.0, max(self.max_ratio, 0.0)),
            n_bad=self.n_bad, n_checked=self.n_checked, worst_index=_unravel(self.worst, self.shape),
            worst_out=self.worst_out, worst_ref=self.worst_ref, n_nonfinite=self.n_nonfinite,
            first_nonfinite_index=_unravel(first, self.shape) if first is not None else [],
            n_skipped=self.n_skipped,
        )


def _unravel(flat: int, shape: list[int]) -> list[int]:
    import torch

    return [int(i) for i in torch.unravel_index(torch.tensor(flat), shape)] if shape else []


def error_stats(out, ref, eager, tol: Tolerance, device=None) -> ErrorStats:
    """Compare ``out`` to ``ref`` where both the reference and the task's Model are finite, slice by slice
    (on ``device`` when given): a first pass for the norms and counts, a second for the elementwise
    bound, which needs the reference's root-mean-square over the whole output."""
    acc = _ErrorAccumulator(ref.shape)
    for start, (o, r, e) in _slices([out, ref, eager], device):
        acc.add_norms(start, o, r, e)
    for start, (o, r, e) in _slices([out, ref, eager], device):
        acc.add_bounds(start, o, r, e, tol)
    return acc.stats(tol)


def _specials_reproduced(o, r, e=None) -> bool:
    import torch

    special = ~torch.isfinite(r)
    if e is not None:
        special &= (torch.isnan(e) & torch.isnan(r)) | (e == r)
    if not special.any():
        return True
    same_nan = torch.isnan(r[special]) == torch.isnan(o[special])
    same_inf = torch.where(torch.isinf(r[special]), o[special] == r[special], True)
    return bool((same_nan & same_inf).all())


def special_values_match(out, ref, eager=None, device=None) -> bool:
    """Where the reference is NaN or ±inf, the output must be the same special value (only where the
    task's own Model in the case dtype produces it too: the op defines it)."""
    for _, (o, r, *e) in _slices([out, ref] + ([eager] if eager is not None else []), device):
        if not _specials_reproduced(o, r, e[0] if e else None):
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
        reproduced = special_values_match(out, ref, eager, device)
        constant = _constant_where_reference_varies(out, ref, eager, tol, device)
        _judge_output(i, s, eager_stats, tol, reproduced, constant, failures, stats)
    return failures, stats


def _judge_output(i: int, s: ErrorStats, eager_stats: ErrorStats, tol: Tolerance, reproduced: bool,
                  constant: float | None, failures: list, stats: list) -> None:
    """Output ``i``'s statistics entry and failures, from what the checks measured (whichever way they walked
    the output)."""
    stats.append({"output": i, "rel_err": s.rel_err, "max_abs_err": s.max_abs_err, "eager_rel_err": eager_stats.rel_err,
                  "tolerance": tol.as_dict(), "elements": s.n_checked, "skipped_out_of_range": s.n_skipped})
    if s.n_nonfinite:
        failures.append(Failure(
            "nonfinite_output",
            f"output {i} has {s.n_nonfinite} NaN/inf value(s) where the reference is finite "
            f"(first at index {s.first_nonfinite_index})",
            {"output": i, "worst_index": s.first_nonfinite_index, "count": s.n_nonfinite}))
    if not reproduced:
        failures.append(Failure("special_values", f"output {i} does not reproduce the reference's NaN/inf values",
                                {"output": i}))
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


def check_values_in_rows(runs: list[list], slices, base: Tolerance,
                         device=None) -> tuple[list[Failure], list[dict], list[Failure]]:
    """``check_values`` of the first of the candidate's ``runs`` and ``check_determinism`` of all of them,
    for outputs whose rows along dim 0 the op computes independently, without the whole float64 reference
    anywhere: ``slices()`` gives, each time it is called, a fresh iterator of ``(first row, end row,
    [float64 reference], [task Model in the case dtype])`` computed on ``device`` for that slice of rows.
    The candidate's outputs (on the host) reach ``device`` a slice at a time. Three passes, because each
    statistic needs one before it: norms and counts; the Model's elementwise ratio (it calibrates the
    tolerance, and the bound needs the reference's rms over the whole output); the candidate's ratio under
    that tolerance. Returns (value failures, statistics, determinism failures), as the whole-tensor
    checks would."""
    outs = runs[0]
    widths = [_row_width(o) for o in outs]
    eager_acc = [_ErrorAccumulator(o.shape) for o in outs]
    acc = [_ErrorAccumulator(o.shape) for o in outs]
    reproduced = [True] * len(outs)
    constants = [_ConstantAccumulator() for _ in outs]
    differences = _difference_accumulators(runs)
    for a, b, refs, eagers in slices():
        here = [t[a:b].to(device) for t in outs]
        for i, (o, r, e) in _flat_outputs(here, refs, eagers):
            eager_acc[i].add_norms(a * widths[i], e, r, e)
            acc[i].add_norms(a * widths[i], o, r, e)
            reproduced[i] = reproduced[i] and _specials_reproduced(o, r, e)
            constants[i].add(o, r, e)
        for (k, i), difference in differences.items():
            if difference is not None:  # else the shapes differ: a failure whatever the values
                x = here[i] if k == 0 else runs[k][i][a:b].to(device)
                difference.add(a * widths[i], x.reshape(-1), runs[k + 1][i][a:b].to(device).reshape(-1))
        del here
    for a, b, refs, eagers in slices():  # the Model's own error: no candidate output needed
        for i, (e, r, _) in _flat_outputs(eagers, refs, eagers):
            eager_acc[i].add_bounds(a * widths[i], e, r, e, base)
    eager_stats = [x.stats(base) for x in eager_acc]
    tols = [calibrated(base, s.excess) for s in eager_stats]
    for a, b, refs, eagers in slices():
        for i, (o, r, e) in _flat_outputs([t[a:b].to(device) for t in outs], refs, eagers):
            acc[i].add_bounds(a * widths[i], o, r, e, tols[i])
    failures, stats = [], []
    for i in range(len(outs)):
        _judge_output(i, acc[i].stats(tols[i]), eager_stats[i], tols[i], reproduced[i],
                      constants[i].result(tols[i]), failures, stats)
    determinism = []
    for (k, i), difference in differences.items():
        where = [] if difference is None else difference.result(runs[k][i].shape)
        if where is not None:
            determinism.append(_nondeterministic(i, where))
    return failures, stats, determinism


def _row_width(t) -> int:
    """Elements per row along dim 0: the flat index of row ``a``'s first element is ``a`` times this."""
    import math

    return math.prod(t.shape[1:])


def _flat_outputs(outs: list, refs: list, eagers: list):
    """``(i, float64 flat out, ref, eager)`` of each output of one slice of rows; empty slices left out (a
    whole-tensor walk has no slice for them either)."""
    import torch

    for i, (o, r, e) in enumerate(zip(outs, refs, eagers)):
        if o.numel():
            yield i, tuple(t.reshape(-1).to(torch.float64) for t in (o, r, e))


def _difference_accumulators(runs: list) -> dict:
    """As ``check_determinism`` pairs consecutive runs output by output, in its order: ``(run, output)`` ->
    an accumulator comparing them slice by slice, or None where their shapes differ."""
    return {(k, i): (_DifferenceAccumulator() if a.shape == b.shape else None)
            for k, (first, again) in enumerate(zip(runs, runs[1:])) for i, (a, b) in enumerate(zip(first, again))}


def _constant_where_reference_varies(out, ref, eager, tol: Tolerance, device=None) -> float | None:
    """The constant value of ``out`` if it is constant (zero included) over the elements where the
    reference is finite and varies by more than the tolerance; else None. Catches outputs that a loose
    or widened tolerance would pass, whatever their magnitude."""
    acc = _ConstantAccumulator()
    for _, (o, r, e) in _slices([out, ref, eager], device):
        acc.add(o, r, e)
    return acc.result(tol)


class _ConstantAccumulator:
    """``_constant_where_reference_varies`` fed slice by slice, in order."""

    def __init__(self):
        self.count, self.first, self.r_abs = 0, None, 0.0
        self.o_min = self.r_min = float("inf")
        self.o_max = self.r_max = -float("inf")

    def add(self, o, r, e) -> None:
        import torch

        domain = torch.isfinite(r) & torch.isfinite(e) & torch.isfinite(o)
        o, r = o[domain], r[domain]
        if not o.numel():
            return
        self.first = float(o[0]) if self.first is None else self.first
        self.count += o.numel()
        self.o_min, self.o_max = min(self.o_min, float(o.min())), max(self.o_max, float(o.max()))
        self.r_min, self.r_max = min(self.r_min, float(r.min())), max(self.r_max, float(r.max()))
        self.r_abs = max(self.r_abs, float(r.abs().max()))

    def result(self, tol: Tolerance) -> float | None:
        if self.count < 2:
            return None
        scale = max(self.r_abs, 1e-300)
        if self.o_max != self.o_min or self.r_max - self.r_min <= 4 * max(tol.rtol, tol.atol, tol.norm) * scale:
            return None
        return self.first


def check_determinism(runs: list[list], device=None) -> list[Failure]:
    """Two runs on identical inputs must agree bit for bit (races and uninitialised reads do not)."""
    failures = []
    for first, again in zip(runs, runs[1:]):
        for i, (a, b) in enumerate(zip(first, again)):
            where = _first_difference(a, b, device)
            if where is not None:
                failures.append(_nondeterministic(i, where))
    return failures


def _nondeterministic(i: int, where: list[int]) -> Failure:
    return Failure("nondeterministic",
                   f"output {i} differs between two runs on the same inputs (first differing "
                   f"region at {where}); a race or a read of uninitialised memory",
                   {"output": i, "worst_index": where})


def _first_difference(a, b, device=None) -> list[int] | None:
    """None when ``a`` and ``b`` are equal bit for bit (NaN where NaN); else the index of their largest
    difference ([] for a scalar or a shape mismatch). Compared in slices of their own dtype."""
    if a.shape != b.shape:
        return []
    fa, fb = a.reshape(-1), b.reshape(-1)
    acc = _DifferenceAccumulator()
    for start in range(0, fa.numel(), CHUNK_ELEMENTS):
        acc.add(start, *(f[start:start + CHUNK_ELEMENTS].to(device or f.device) for f in (fa, fb)))
    return acc.result(a.shape)


class _DifferenceAccumulator:
    """``_first_difference`` fed flat slices of both tensors in order, with the flat index of their first
    element."""

    def __init__(self):
        self.worst, self.largest = None, -1.0

    def add(self, start: int, x, y) -> None:
        import torch

        same = (x == y) | (x.isnan() & y.isnan())
        if bool(same.all()):
            return
        # only elements that differ: one ±inf in both runs is no difference (inf - inf would read as the largest)
        diff = torch.where(same, -1.0, (x.double() - y.double()).abs().nan_to_num(float("inf")))
        at = int(diff.argmax())
        if float(diff[at]) > self.largest:
            self.worst, self.largest = start + at, float(diff[at])

    def result(self, shape) -> list[int] | None:
        if self.worst is None:
            return None
        return _unravel(self.worst, list(shape)) if len(shape) else []
