# Correct control: log-softmax over the last dim in fp32, one row per program; rows up to 8192 in registers, wider rows by an online max/sum pass then a write pass.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _log_softmax_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr, ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * n_cols
    out_row = out_ptr + row * n_cols
    if ONE_PASS:
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=float("-inf")).to(tl.float32)
        shifted = x - tl.max(x, axis=0)
        y = shifted - tl.log(tl.sum(tl.exp(shifted), axis=0))
        tl.store(out_row + cols, y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        # online pass: per-lane running max m and running sum s of exp(x - m)
        m = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
        s = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = tl.load(x_row + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m, x)
            m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # lanes that saw only -inf stay at s = 0
            s = s * tl.exp(m - m_ref) + tl.exp(x - m_ref)
            m = m_new
        row_max = tl.max(m, axis=0)
        log_sum = tl.log(tl.sum(s * tl.exp(m - row_max), axis=0))
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            y = (x - row_max) - log_sum
            tl.store(out_row + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _row_config(n_rows, n_cols):
    """(BLOCK, ONE_PASS, num_warps) for n_rows rows of n_cols elements, one row per program."""
    block = max(16, triton.next_power_of_2(n_cols))
    if block <= 8192:
        return block, True, 16 if block >= 8192 else 8 if block >= 2048 else 4
    # wide rows are streamed in chunks; with few rows (decode-time batches) there are fewer programs
    # than SMs, so each one needs bigger chunks and more warps in flight
    if n_rows < 512:
        return 16384, False, 16
    return 4096, False, 8


def log_softmax(x):
    n_cols = x.shape[-1]
    x2 = x.contiguous().view(-1, n_cols)
    out = torch.empty_like(x2)
    block, one_pass, num_warps = _row_config(x2.shape[0], n_cols)
    _log_softmax_kernel[(x2.shape[0],)](x2, out, n_cols, BLOCK=block, ONE_PASS=one_pass, num_warps=num_warps)
    return out.view(x.shape)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return log_softmax(x)
