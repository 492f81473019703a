# Bug: adds one ulp of call-dependent noise (as a race between programs would); each run differs from the last.
# expect: nondeterministic
# task: gelu
import random
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _gelu_noisy(x_ptr, out_ptr, n, seed, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    bits = y.to(tl.int32, bitcast=True) + (tl.randint(seed, offs) & 1).to(tl.int32)
    y = tl.where(y != 0.0, bits.to(tl.float32, bitcast=True), y)
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _gelu_noisy[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), random.randrange(1 << 30), BLOCK=1024)
        return out
