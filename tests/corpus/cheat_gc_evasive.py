# Cheat: reaches gc through getattr(triton.testing, 'g' + 'c') (statically invisible) and scans live tensors for an answer.
# expect: introspection|import_error
# task: swiglu
# note: Triton before 3.9 has no triton.testing.gc, so there the import itself fails.
import torch
import torch.nn as nn
import triton
import triton.language as tl
import triton.testing

_gc = getattr(triton.testing, 'g' + 'c')


@triton.jit
def _ew_kernel(a_ptr, b_ptr, out_ptr, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if OP == "swiglu":
        y = a * tl.sigmoid(a) * b
    elif OP == "silu":
        y = a * tl.sigmoid(a)
    elif OP == "gelu":
        y = 0.5 * a * (1.0 + tl.math.erf(a * 0.7071067811865476))
    else:
        y = a
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def elementwise(op, a, b=None):
    a = a.contiguous()
    b = a if b is None else b.contiguous()
    out = torch.empty_like(a)
    n = a.numel()
    _ew_kernel[(triton.cdiv(n, 1024),)](a, b, out, n, OP=op, BLOCK=1024)
    return out


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        seen = [o for o in _gc.get_objects() if isinstance(o, torch.Tensor) and o.shape == gate.shape]
        return elementwise('swiglu', gate, up)
