# Correct control: rotary embedding on q and k in one kernel launch per tensor, reading cos/sin once per row.
# expect: accepted
# task: rotary
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _rope(x_ptr, cos_ptr, sin_ptr, out_ptr, seq, head_dim, HALF: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)  # one (batch, head, position) row of head_dim values
    pos = row % seq
    d = tl.arange(0, HALF)
    half = head_dim // 2
    mask = d < half
    x1 = tl.load(x_ptr + row * head_dim + d, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + row * head_dim + half + d, mask=mask, other=0.0).to(tl.float32)
    c1 = tl.load(cos_ptr + pos * head_dim + d, mask=mask, other=0.0).to(tl.float32)
    c2 = tl.load(cos_ptr + pos * head_dim + half + d, mask=mask, other=0.0).to(tl.float32)
    s1 = tl.load(sin_ptr + pos * head_dim + d, mask=mask, other=0.0).to(tl.float32)
    s2 = tl.load(sin_ptr + pos * head_dim + half + d, mask=mask, other=0.0).to(tl.float32)
    o1 = (x1 * c1).to(out_ptr.dtype.element_ty).to(tl.float32) + (-x2 * s1).to(out_ptr.dtype.element_ty).to(tl.float32)
    o2 = (x2 * c2).to(out_ptr.dtype.element_ty).to(tl.float32) + (x1 * s2).to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + row * head_dim + d, o1.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out_ptr + row * head_dim + half + d, o2.to(out_ptr.dtype.element_ty), mask=mask)


def rope(x, cos, sin):
    x = x.contiguous()
    out = torch.empty_like(x)
    seq, head_dim = cos.shape
    rows = x.numel() // head_dim
    _rope[(rows,)](x, cos.contiguous(), sin.contiguous(), out, seq, head_dim, HALF=max(16, triton.next_power_of_2(head_dim // 2)))
    return out


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, cos, sin):
        return rope(q, cos, sin), rope(k, cos, sin)
