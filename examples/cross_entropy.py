# Correct control: mean cross-entropy with ignore_index, fp32 online logsumexp one row per program, then a one-program deterministic mean over the valid rows.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _row_loss_kernel(logits_ptr, targets_ptr, loss_ptr, valid_ptr, n_cols, ignore_index,
                     BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = logits_ptr + row * n_cols
    # online logsumexp: per-lane running max m and running sum s of exp(x - m)
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
    lse = row_max + tl.log(tl.sum(s * tl.exp(m - row_max), axis=0))
    target = tl.load(targets_ptr + row)
    valid = target != ignore_index
    target_logit = tl.load(x_row + tl.where(valid, target, 0)).to(tl.float32)
    tl.store(loss_ptr + row, tl.where(valid, lse - target_logit, 0.0))
    tl.store(valid_ptr + row, tl.where(valid, 1.0, 0.0))


@triton.jit
def _mean_kernel(loss_ptr, valid_ptr, out_ptr, n_rows, BLOCK: tl.constexpr):
    total = tl.zeros([BLOCK], dtype=tl.float32)
    count = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_rows, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n_rows
        total += tl.load(loss_ptr + offs, mask=mask, other=0.0)
        count += tl.load(valid_ptr + offs, mask=mask, other=0.0)
    # all targets ignored gives 0/0 = nan, as F.cross_entropy does
    tl.store(out_ptr, tl.sum(total, axis=0) / tl.sum(count, axis=0))


def cross_entropy(logits, targets, ignore_index):
    n_cols = logits.shape[-1]
    x2 = logits.contiguous().view(-1, n_cols)
    t = targets.contiguous().view(-1)
    n_rows = x2.shape[0]
    row_loss = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    row_valid = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    out = torch.empty((), dtype=torch.float32, device=logits.device)
    if n_rows < 512 and n_cols > 8192:
        # few rows (fewer programs than SMs): bigger chunks and more warps in flight per row
        block, num_warps = 16384, 16
    else:
        block = min(4096, max(16, triton.next_power_of_2(n_cols)))
        num_warps = 8 if block >= 2048 else 4
    _row_loss_kernel[(n_rows,)](x2, t, row_loss, row_valid, n_cols, ignore_index,
                                BLOCK=block, num_warps=num_warps)
    block_r = min(1024, max(16, triton.next_power_of_2(n_rows)))
    _mean_kernel[(1,)](row_loss, row_valid, out, n_rows, BLOCK=block_r, num_warps=4)
    return out


class ModelNew(nn.Module):
    def __init__(self, ignore_index):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        return cross_entropy(logits, targets, self.ignore_index)
