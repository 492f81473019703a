# Crash: forward raises a Python exception.
# expect: exception
# task: rmsnorm
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _rmsnorm_kernel(x_ptr, w_ptr, out_ptr, n_cols, eps,
                    BLOCK: tl.constexpr, ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * n_cols
    out_row = out_ptr + row * n_cols
    if ONE_PASS:
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(out_row + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = tl.load(x_row + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
            acc += x * x
        rstd = tl.rsqrt(tl.sum(acc, axis=0) / n_cols + eps)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(out_row + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def _row_config(n_cols):
    """(BLOCK, ONE_PASS, num_warps) for one row of n_cols elements."""
    block = max(16, triton.next_power_of_2(n_cols))
    one_pass = block <= 8192
    if not one_pass:
        block = 4096
    num_warps = 16 if block >= 8192 else 8 if block >= 2048 else 4
    return block, one_pass, num_warps


def rmsnorm(x, weight, eps):
    n_cols = x.shape[-1]
    x2 = x.contiguous().view(-1, n_cols)
    out = torch.empty_like(x2)
    block, one_pass, num_warps = _row_config(n_cols)
    _rmsnorm_kernel[(x2.shape[0],)](x2, weight.contiguous(), out, n_cols, eps,
                                    BLOCK=block, ONE_PASS=one_pass, num_warps=num_warps)
    return out.view(x.shape)


class ModelNew(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        if x.shape[0] > 0:
            raise RuntimeError("this candidate always raises")
        return rmsnorm(x, self.weight, self.eps)
