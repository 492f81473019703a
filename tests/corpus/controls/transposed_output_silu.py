# Correct control: SiLU written into a column-major buffer and returned transposed: non-contiguous strides, no overlap.
# expect: accepted
# task: silu
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _silu_t(x_ptr, out_ptr, n_rows, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + cols * n_rows + row, (x * tl.sigmoid(x)).to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        n_rows, n_cols = x.shape
        out_t = torch.empty((n_cols, n_rows), dtype=x.dtype, device=x.device)
        _silu_t[(n_rows,)](x, out_t, n_rows, n_cols, BLOCK=max(16, triton.next_power_of_2(n_cols)))
        return out_t.t()
