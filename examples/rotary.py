# Correct control: rotary embedding (rotate_half form) on q and k in fp32; a tile of rows x half-head per program, both halves rotated together, cos/sin indexed by the row's position.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _rotary_kernel(x_ptr, cos_ptr, sin_ptr, out_ptr, n_rows, seq, half,
                   BLOCK_R: tl.constexpr, BLOCK_H: tl.constexpr):
    # x is (batch * heads * seq, 2 * half) contiguous; row r is at position r % seq
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_mask = rows < n_rows
    x_base = rows[:, None] * (2 * half)
    cs_base = (rows % seq)[:, None] * (2 * half)
    for start in range(0, half, BLOCK_H):
        cols = start + tl.arange(0, BLOCK_H)[None, :]
        mask = row_mask[:, None] & (cols < half)
        x1 = tl.load(x_ptr + x_base + cols, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(x_ptr + x_base + half + cols, mask=mask, other=0.0).to(tl.float32)
        cos1 = tl.load(cos_ptr + cs_base + cols, mask=mask, other=0.0).to(tl.float32)
        cos2 = tl.load(cos_ptr + cs_base + half + cols, mask=mask, other=0.0).to(tl.float32)
        sin1 = tl.load(sin_ptr + cs_base + cols, mask=mask, other=0.0).to(tl.float32)
        sin2 = tl.load(sin_ptr + cs_base + half + cols, mask=mask, other=0.0).to(tl.float32)
        # rotate_half(x) = cat(-x2, x1)
        tl.store(out_ptr + x_base + cols, (x1 * cos1 - x2 * sin1).to(out_ptr.dtype.element_ty), mask=mask)
        tl.store(out_ptr + x_base + half + cols, (x2 * cos2 + x1 * sin2).to(out_ptr.dtype.element_ty), mask=mask)


def _apply_rotary(x, cos, sin):
    seq, head_dim = x.shape[-2], x.shape[-1]
    half = head_dim // 2
    x = x.contiguous()
    out = torch.empty_like(x)
    n_rows = x.numel() // head_dim
    block_h = min(1024, max(16, triton.next_power_of_2(half)))
    # about 2048 (row, column-pair) elements per program: 32 rows of a 128-wide head
    block_r = max(1, min(2048 // block_h, triton.next_power_of_2(n_rows)))
    _rotary_kernel[(triton.cdiv(n_rows, block_r),)](x, cos, sin, out, n_rows, seq, half,
                                                    BLOCK_R=block_r, BLOCK_H=block_h, num_warps=4)
    return out


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, cos, sin):
        cos = cos.contiguous()
        sin = sin.contiguous()
        return _apply_rotary(q, cos, sin), _apply_rotary(k, cos, sin)
