# Correct control: RMSNorm that keeps a per-shape fp32 workspace (row statistics) on the module and reuses it across calls.
# expect: accepted
# task: rmsnorm
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _stats(x_ptr, rstd_ptr, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    tl.store(rstd_ptr + row, tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps))


@triton.jit
def _apply(x_ptr, rstd_ptr, w_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    y = (x * tl.load(rstd_ptr + row)).to(out_ptr.dtype.element_ty).to(tl.float32) * w
    tl.store(out_ptr + row * n_cols + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps
        self._workspace = {}

    def forward(self, x):
        x2 = x.contiguous().view(-1, x.shape[-1])
        key = (x2.shape[0], x2.device)
        if key not in self._workspace:
            self._workspace = {key: torch.empty(x2.shape[0], dtype=torch.float32, device=x2.device)}
        rstd = self._workspace[key]
        out = torch.empty_like(x2)
        block = max(16, triton.next_power_of_2(x2.shape[1]))
        _stats[(x2.shape[0],)](x2, rstd, x2.shape[1], self.eps, BLOCK=block)
        _apply[(x2.shape[0],)](x2, rstd, self.weight, out, x2.shape[1], BLOCK=block)
        return out.view(x.shape)
