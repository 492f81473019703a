# Correct control: SwiGLU over 2-D blocks (row, column tiles) with an int64 offset and a masked tail in both dimensions.
# expect: accepted
# task: swiglu
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _swiglu_2d(g_ptr, u_ptr, out_ptr, n_rows, n_cols, BR: tl.constexpr, BC: tl.constexpr):
    rows = tl.program_id(0) * BR + tl.arange(0, BR)
    cols = tl.program_id(1) * BC + tl.arange(0, BC)
    offs = rows[:, None].to(tl.int64) * n_cols + cols[None, :]
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, (g * tl.sigmoid(g) * u).to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        gate, up = gate.contiguous(), up.contiguous()
        out = torch.empty_like(gate)
        n_rows, n_cols = gate.shape
        _swiglu_2d[(triton.cdiv(n_rows, 16), triton.cdiv(n_cols, 256))](gate, up, out, n_rows, n_cols, BR=16, BC=256)
        return out
