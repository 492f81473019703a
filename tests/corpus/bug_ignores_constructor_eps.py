# Bug: stores the eps it is constructed with but bakes 1e-6 (the task's default) into its kernel; right only while nobody builds it with another eps.
# expect: mismatch
# task: rmsnorm
import torch
import torch.nn as nn
import triton
import triton.language as tl

BAKED_EPS = 1e-6  # BUG: get_init_inputs()'s value, not the one ModelNew is built with


@triton.jit
def _rmsnorm_kernel(x_ptr, w_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + BAKED_EPS)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * n_cols + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps  # stored, never read

    def forward(self, x):
        n_cols = x.shape[-1]
        x2 = x.contiguous().view(-1, n_cols)
        out = torch.empty_like(x2)
        _rmsnorm_kernel[(x2.shape[0],)](x2, self.weight.contiguous(), out, n_cols,
                                        BLOCK=max(16, triton.next_power_of_2(n_cols)))
        return out.view(x.shape)
