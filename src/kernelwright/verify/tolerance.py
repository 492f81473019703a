"""Dtype-aware tolerances, calibrated against what the task's own Model achieves in that dtype.

A candidate passes an output when both hold, against the float64 reference ``ref``:

* relative norm error ``‖out − ref‖ / ‖ref‖ ≤ max(norm, (atol + rtol) / √n)`` over ``n`` elements: the
  norm test catches small systematic errors that averaging exposes, and a handful of elements averages
  nothing (one bf16 element rounded twice is 1.5 units of its last place from float64; nine of them can
  sit 0.8% off in the norm), so for them it never asks more than the elementwise test;
* elementwise ``|out − ref| ≤ atol · rms(ref) + rtol · |ref|`` — ``atol`` is in units of the
  reference's root-mean-square, so outputs of any magnitude are judged alike and a near-zero output
  cannot pass an absolute tolerance built for values near one.

The defaults are a few units of the dtype's rounding. Where the task's ``Model`` run in the same dtype is
itself further from float64 than that (it rounds intermediates), the bounds widen to twice its error:
a candidate is never held to more than PyTorch achieves, and never allowed much less.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# (norm, atol, rtol) per dtype. Unit roundoff: bf16 2^-8 (3.9e-3), fp16 2^-11 (4.9e-4), fp32 2^-24 (6e-8).
DEFAULTS = {
    "bfloat16": (8e-3, 1.6e-2, 1.6e-2),
    "float16": (1e-3, 2e-3, 2e-3),
    "float32": (1e-5, 2e-5, 2e-5),
    "float64": (1e-12, 1e-12, 1e-12),
}


@dataclass(frozen=True)
class Tolerance:
    norm: float
    atol: float
    rtol: float

    def widened(self, factor: float) -> "Tolerance":
        return Tolerance(self.norm * factor, self.atol * factor, self.rtol * factor)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def norm_bound(tol: Tolerance, n_elements: int) -> float:
    """The relative-norm bound for an output of ``n_elements`` checked elements. Elements that each pass the
    elementwise test give a relative norm error of at most about ``atol + rtol``; that is the bound for one
    element, and it falls as 1/√n to ``norm``, since the root-mean-square of many rounding errors settles
    near its expectation while that of a few can sit near their maximum."""
    return max(tol.norm, (tol.atol + tol.rtol) / max(1, n_elements) ** 0.5)


def for_dtype(dtype: str, *, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """The default tolerance of a dtype, with a task's ATOL/RTOL overrides (both also widen ``norm``)."""
    norm, default_atol, default_rtol = DEFAULTS[dtype]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    return Tolerance(max(norm, atol, rtol) if (atol, rtol) != (default_atol, default_rtol) else norm, atol, rtol)


# Triton's interpreter (the CPU) casts float32 to bfloat16 by truncation, not to nearest: Triton 3.9 gave 2021 of
# 4096 values unlike torch's cast, with twice its mean error. A correct bf16 kernel run there is twice as far from
# float64 as on a GPU (CI: a correct two-kernel add+RMSNorm at 0.0069-0.0085 against 0.008, its eager Model 0.003).
INTERPRETER_BF16 = 2.0


def for_case(dtype: str, device: str, *, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """``for_dtype``, widened for bfloat16 under the interpreter (``INTERPRETER_BF16``)."""
    tol = for_dtype(dtype, atol=atol, rtol=rtol)
    return tol.widened(INTERPRETER_BF16) if device == "cpu" and dtype == "bfloat16" else tol


def calibrated(base: Tolerance, eager_excess: float) -> Tolerance:
    """Widen ``base`` when the task's own Model exceeds half of it (``eager_excess`` = its worst ratio
    of error to bound, over the norm and elementwise tests)."""
    return base.widened(2 * eager_excess) if eager_excess > 0.5 else base
