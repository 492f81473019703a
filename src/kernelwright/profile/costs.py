"""Bytes an op moves and the FLOPs it does, from the shapes and dtypes the profiler recorded, and the
ceilings a profile is measured against.

The profiler records an op's inputs, not its outputs, so the output is inferred: a matrix product from its
operand shapes, a reduction from its ``dim``/``keepdim`` arguments, a cast from its target dtype, and anything
else as the broadcast of its tensor inputs. Views move nothing. These are the bytes an ideal kernel for the
op must move (each input read once, the output written once), which is what a roofline compares against.
FLOPs are counted for matrix products and attention only, the ops whose FLOPs can decide their bound.
"""

from __future__ import annotations

import math
import time
from typing import Any

# dtype names as the profiler writes them -> bytes per element
_ELEMENT_BYTES = {"float": 4, "double": 8, "c10::BFloat16": 2, "c10::Half": 2, "long int": 8, "int": 4,
                  "bool": 1, "unsigned char": 1, "signed char": 1, "short int": 2, "c10::Float8_e4m3fn": 1,
                  "c10::Float8_e5m2": 1, "c10::complex<float>": 8}
# c10::ScalarType codes (a cast's target dtype is recorded as one) -> bytes per element
_SCALAR_TYPE_BYTES = {0: 1, 1: 1, 2: 2, 3: 4, 4: 8, 5: 2, 6: 4, 7: 8, 11: 1, 15: 2, 23: 1, 24: 1}
_VIEWS = {"aten::view", "aten::reshape", "aten::_reshape_alias", "aten::transpose", "aten::t", "aten::permute",
          "aten::expand", "aten::as_strided", "aten::unsqueeze", "aten::squeeze", "aten::slice", "aten::select",
          "aten::split", "aten::chunk", "aten::unbind", "aten::narrow", "aten::detach", "aten::alias",
          "aten::unflatten", "aten::flatten", "aten::empty", "aten::empty_strided", "aten::empty_like",
          "aten::lift_fresh", "aten::resolve_conj", "aten::resolve_neg", "aten::_unsafe_view", "aten::view_as",
          "aten::expand_as", "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense"}
_MATMULS = {"aten::linear", "aten::matmul", "aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"}
_REDUCTIONS = {"aten::mean", "aten::sum", "aten::amax", "aten::amin", "aten::max", "aten::min", "aten::var",
               "aten::std", "aten::norm", "aten::prod", "aten::any", "aten::all", "aten::argmax", "aten::argmin"}
_CASTS = {"aten::to", "aten::_to_copy"}
_ATTENTION = "aten::scaled_dot_product_attention"  # (q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _numel(shape) -> int:
    return math.prod(shape) if shape else 1


def _tensors(shapes, dtypes) -> list[tuple[list[int], int]]:
    """(shape, element bytes) of each tensor input (scalars and lists dropped)."""
    out = []
    for shape, dtype in zip(shapes or [], dtypes or []):
        size = _ELEMENT_BYTES.get(dtype)
        if size is not None and isinstance(shape, list) and all(isinstance(d, int) for d in shape):
            out.append((shape, size))
    return out


def _broadcast(shapes: list[list[int]]) -> list[int]:
    rank = max((len(s) for s in shapes), default=0)
    padded = [[1] * (rank - len(s)) + list(s) for s in shapes]
    return [max(dims) for dims in zip(*padded)] if padded else []


def _reduced(shape: list[int], concrete: list[Any]) -> list[int]:
    dims = next((c for c in concrete[1:2] if isinstance(c, (list, int))), None)
    keep = len(concrete) > 2 and concrete[2] is True
    if dims is None:
        return [1] * len(shape) if keep else []
    dims = {d % len(shape) for d in ([dims] if isinstance(dims, int) else dims)} if shape else set()
    return [1 if i in dims else d for i, d in enumerate(shape) if keep or i not in dims]


def _matmul_output(name: str, shapes: list[list[int]]) -> list[int]:
    if name == "aten::linear" and len(shapes) >= 2:  # x[..., K] @ W[N, K]^T
        return [*shapes[0][:-1], shapes[1][0]]
    a, b = (shapes[1], shapes[2]) if name in ("aten::addmm", "aten::baddbmm") and len(shapes) >= 3 else shapes[:2]
    return [*_broadcast([a[:-2], b[:-2]]), a[-2], b[-1]] if len(a) >= 2 and len(b) >= 2 else []


def op_bytes(name: str, shapes, dtypes, concrete) -> int:
    """Bytes an ideal kernel for this op moves: tensor inputs read once, the inferred output written once."""
    if name in _VIEWS:
        return 0
    tensors = _tensors(shapes, dtypes)
    if not tensors:
        return 0
    if name == "aten::embedding" and len(tensors) >= 2:  # only the looked-up rows are read, not the table
        (weight, width), (index, index_width) = tensors[:2]
        return _numel(index) * (index_width + 2 * weight[-1] * width) if weight else 0
    read = sum(_numel(s) * size for s, size in tensors)
    width = max(size for _, size in tensors)
    if name in _MATMULS:
        out_shape = _matmul_output(name, [s for s, _ in tensors])
    elif name in _REDUCTIONS:
        out_shape = _reduced(tensors[0][0], list(concrete or []))
    else:
        out_shape = _broadcast([s for s, _ in tensors])
    if name in _CASTS:
        code = next((c for c in (concrete or [])[1:2] if isinstance(c, int)), None)
        width = _SCALAR_TYPE_BYTES.get(code, tensors[0][1])
    if name.endswith("_") and name not in _CASTS:  # in place: the output is the first input, already read
        return read + _numel(tensors[0][0]) * tensors[0][1]
    return read + _numel(out_shape) * width


def op_flops(name: str, shapes, dtypes, concrete) -> int:
    """Multiply-adds times two of a matrix product (from its operands) or of attention (``QK^T`` and ``PV``,
    half of it under ``is_causal``); 0 for any other op."""
    operands = [s for s, _ in _tensors(shapes, dtypes)]
    if name in _MATMULS and len(operands) >= 2:
        out_shape = _matmul_output(name, operands)
        left = operands[1] if name in ("aten::addmm", "aten::baddbmm") and len(operands) >= 3 else operands[0]
        return 2 * _numel(out_shape) * left[-1] if out_shape else 0
    if name == _ATTENTION and len(operands) >= 3 and all(len(s) >= 2 for s in operands[:3]):
        q, k, v = operands[:3]
        flops = 2 * _numel(q[:-1]) * k[-2] * (q[-1] + v[-1])  # batch x heads x queries rows, keys columns
        causal = len(concrete or []) > 5 and concrete[5] is True
        return flops // 2 if causal else flops
    return 0


# The shortest a GPU kernel runs, launch to completion (an empty kernel measures 2-3 us on an H100): no
# op's ideal time is taken below this, or a decode step's hundreds of tiny ops would promise impossible savings.
GPU_MIN_CALL_MS = 0.002


def measure_cpu_ceilings() -> dict[str, float]:
    """This machine's copy bandwidth (bytes read + written over a 64 MiB copy, beyond any cache) and float32
    matmul rate: the CPU's roofline, measured in about a second."""
    import torch

    src = torch.randn(16 << 20)
    dst = torch.empty_like(src)
    copy_s = _best_of(lambda: dst.copy_(src), 5)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    mm_s = _best_of(lambda: a @ b, 5)
    return {"copy_gbps": 2 * src.numel() * 4 / copy_s / 1e9, "tflops": 2 * 512**3 / mm_s / 1e12,
            "source": "measured on this CPU: a 64 MiB copy and a 512x512 float32 matmul"}


def _best_of(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ceilings(device: str, dtype: str) -> dict[str, Any]:
    """Copy GB/s and matmul TFLOP/s for ``dtype``: the GPU's cached measurements (`kernelwright device`), the
    CPU's measured at once."""
    if not device.startswith("cuda"):
        return measure_cpu_ceilings()
    from kernelwright.bench.device import profile

    measured = profile(device)
    return {"copy_gbps": measured.copy_gbps, "tflops": measured.matmul_rate(dtype), "min_call_ms": GPU_MIN_CALL_MS,
            "source": f"measured on {measured.device_name} (`kernelwright device`); no kernel under "
                      f"{GPU_MIN_CALL_MS * 1e3:.0f} us"}
