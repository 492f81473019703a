# Correct control: L2 normalisation of each last-dim vector in fp32, x / max(||x||, eps); several short rows per program as a 2-D tile, wide rows looped.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _clamp_min_keep_nan(norm, eps):
    # tl.maximum returns eps for a NaN norm; torch's clamp_min keeps the NaN, so a row holding NaN stays NaN.
    return tl.where(norm != norm, norm, tl.maximum(norm, eps))


@triton.jit
def _l2norm_kernel(x_ptr, out_ptr, n_rows, n_cols, eps,
                   BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, ONE_PASS: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_mask = rows < n_rows
    base = rows[:, None] * n_cols
    if ONE_PASS:
        cols = tl.arange(0, BLOCK_D)[None, :]
        mask = row_mask[:, None] & (cols < n_cols)
        x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        # torch's norm of a single element is |x|, which holds where x * x overflows fp32 (|x| > ~1.8e19);
        # wider rows overflow in torch as they do here, and the task's fp32 Model defines that.
        norm = tl.where(n_cols == 1, tl.sum(tl.abs(x), axis=1), tl.sqrt(tl.sum(x * x, axis=1)))
        inv = 1.0 / _clamp_min_keep_nan(norm, eps)
        tl.store(out_ptr + base + cols, (x * inv[:, None]).to(out_ptr.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros([BLOCK_R, BLOCK_D], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK_D):
            cols = start + tl.arange(0, BLOCK_D)[None, :]
            mask = row_mask[:, None] & (cols < n_cols)
            x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
            acc += x * x
        inv = 1.0 / _clamp_min_keep_nan(tl.sqrt(tl.sum(acc, axis=1)), eps)
        for start in range(0, n_cols, BLOCK_D):
            cols = start + tl.arange(0, BLOCK_D)[None, :]
            mask = row_mask[:, None] & (cols < n_cols)
            x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(out_ptr + base + cols, (x * inv[:, None]).to(out_ptr.dtype.element_ty), mask=mask)


def l2norm(x, eps):
    n_cols = x.shape[-1]
    x2 = x.contiguous().view(-1, n_cols)
    n_rows = x2.shape[0]
    out = torch.empty_like(x2)
    block_d = max(16, triton.next_power_of_2(n_cols))
    one_pass = block_d <= 8192
    if not one_pass:
        block_d = 4096
    # about 4096 elements per program: 32 rows of 128, one row of 4096 or more
    block_r = max(1, min(4096 // block_d, triton.next_power_of_2(n_rows)))
    num_warps = 16 if block_r * block_d >= 8192 else 8 if block_r * block_d >= 2048 else 4
    _l2norm_kernel[(triton.cdiv(n_rows, block_r),)](x2, out, n_rows, n_cols, eps, BLOCK_R=block_r,
                                                    BLOCK_D=block_d, ONE_PASS=one_pass, num_warps=num_warps)
    return out.view(x.shape)


class ModelNew(nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return l2norm(x, self.eps)
