"""L2 normalisation over the last dimension of per-head (tokens, heads, head_dim) vectors.

F.normalize(x, p=2, dim=-1) (eps 1e-12: y = x / max(||x||_2, eps)), computed in fp32 and cast back.
This is the query/key L2 norm of linear-attention layers (e.g. the gated delta-net layers of Qwen3-Next,
transformers.models.qwen3_next, which use an rsqrt variant) and of embedding models.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
heads = 32
head_dim = 128
eps = 1e-12

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, heads=32, head_dim=128),
    dict(tokens=32768, heads=16, head_dim=128),   # Qwen3-Next key heads, long sequence
    dict(tokens=4096, heads=32, head_dim=128),
    dict(tokens=16384, heads=8, head_dim=256),    # 256-wide heads (Gemma-style)
    dict(tokens=128, heads=32, head_dim=128),     # decode batch
]
DESCRIPTION = "L2 normalisation of each head vector (F.normalize over the last dim), fp32 math"


class Model(nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return F.normalize(x.float(), p=2.0, dim=-1, eps=self.eps).to(x.dtype)


def native(model, x):
    return F.normalize(x, p=2.0, dim=-1, eps=model.eps)


NATIVE = native


def get_inputs():
    return [torch.randn(tokens, heads, head_dim)]


def get_init_inputs():
    return [eps]
