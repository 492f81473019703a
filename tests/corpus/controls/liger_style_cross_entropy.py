# Correct control: per-row losses in Triton (online logsumexp), the mean over non-ignored rows in PyTorch (as Liger-Kernel does).
# expect: accepted
# task: cross_entropy
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _row_loss(logits_ptr, targets_ptr, loss_ptr, n_cols, ignore_index, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    target = tl.load(targets_ptr + row)
    m = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    s = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(logits_ptr + row * n_cols + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, x)
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_ref) + tl.exp(x - m_ref)
        m = m_new
    row_max = tl.max(m, axis=0)
    lse = row_max + tl.log(tl.sum(s * tl.exp(m - row_max), axis=0))
    safe = tl.where(target == ignore_index, 0, target)
    picked = tl.load(logits_ptr + row * n_cols + safe).to(tl.float32)
    loss = tl.where(target == ignore_index, 0.0, lse - picked)
    tl.store(loss_ptr + row, loss)


class ModelNew(nn.Module):
    def __init__(self, ignore_index):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        logits = logits.contiguous()
        n_rows, n_cols = logits.shape
        losses = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
        block = min(4096, triton.next_power_of_2(n_cols))
        _row_loss[(n_rows,)](logits, targets.contiguous(), losses, n_cols, self.ignore_index, BLOCK=block)
        return losses.sum() / (targets != self.ignore_index).sum()
