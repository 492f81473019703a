# Correct control: squared ReLU max(x, 0)^2, elementwise over the flattened tensor in fp32, up to 4096 elements per program, masked tail.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _relu_squared_kernel(x_ptr, out_ptr, n_elements, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    r = tl.where(x < 0.0, 0.0, x)  # not tl.maximum: relu propagates NaN, as torch.relu does
    y = r * r
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def relu_squared(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    block = min(4096, max(128, triton.next_power_of_2(n)))
    _relu_squared_kernel[(triton.cdiv(n, block),)](x, out, n, BLOCK=block, num_warps=8 if block >= 2048 else 4)
    return out


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return relu_squared(x)
