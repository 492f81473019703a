# Bug: softmax without subtracting the row max; fine on N(0,1) inputs, inf/NaN on large ones (specialised to the input distribution).
# expect: nonfinite_output
# task: softmax
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _softmax_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=float("-inf")).to(tl.float32)
    e = tl.exp(x)
    tl.store(out_ptr + row * n_cols + cols, (e / tl.sum(e, axis=0)).to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x2 = x.contiguous().view(-1, x.shape[-1])
        out = torch.empty_like(x2)
        _softmax_kernel[(x2.shape[0],)](x2, out, x2.shape[1], BLOCK=triton.next_power_of_2(x2.shape[1]))
        return out.view(x.shape)
