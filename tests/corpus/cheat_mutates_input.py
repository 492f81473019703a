# Cheat: computes relu(x)^2 in place into the input and returns it (no output allocation).
# expect: mutated_input
# task: relu_squared
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _relu_sq_inplace(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    r = tl.where(x < 0.0, 0.0, x)
    tl.store(x_ptr + offs, (r * r).to(x_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        _relu_sq_inplace[(triton.cdiv(x.numel(), 1024),)](x, x.numel(), BLOCK=1024)
        return x
