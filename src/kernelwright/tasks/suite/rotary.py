"""Rotary position embedding (RoPE) applied to queries and keys, as transformers' apply_rotary_pos_emb.

transformers.models.llama.modeling_llama.apply_rotary_pos_emb with rotate_half (the "half-split"
layout of Llama, Mistral, Qwen): q_embed = q * cos + rotate_half(q) * sin, likewise for k, where
rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2]). q is (batch, heads, seq, head_dim), k is
(batch, kv_heads, seq, head_dim) (grouped-query attention); cos and sin are (seq, head_dim) tables built
from positions 0..seq-1 and inv_freq = 1 / 10000 ** (arange(0, head_dim, 2) / head_dim), with
emb = cat(freqs, freqs), and are broadcast over batch and heads. Returns (q_embed, k_embed).
"""

import torch
import torch.nn as nn

seq = 4096
batch = 2
heads = 32
kv_heads = 8
head_dim = 128
base = 10000.0

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(seq=4096, batch=2, heads=32, kv_heads=8, head_dim=128),    # Llama-3-8B, 2 x 4k
    dict(seq=8192, batch=1, heads=32, kv_heads=8, head_dim=128),    # Llama-3-8B, 8k prefill
    dict(seq=8192, batch=1, heads=64, kv_heads=8, head_dim=128),    # Llama-3-70B
    dict(seq=32768, batch=1, heads=32, kv_heads=8, head_dim=128),   # long context
    dict(seq=2048, batch=8, heads=28, kv_heads=4, head_dim=128),    # Qwen2.5-7B, batched
]
# head_dim must be even (rotate_half splits it). batch and kv_heads are listed with multiple 1 only so
# that their small values are taken as shape knobs, not fixed constants.
KNOB_MULTIPLE_OF = {"head_dim": 2, "batch": 1, "kv_heads": 1}
REPLACES = "transformers.models.llama.modeling_llama.apply_rotary_pos_emb"
DESCRIPTION = "Rotary position embedding (rotate_half form) on q and k; returns (q_embed, k_embed)"


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, cos, sin):
        cos = cos.unsqueeze(0).unsqueeze(0)  # (1, 1, seq, head_dim): broadcast over batch and heads
        sin = sin.unsqueeze(0).unsqueeze(0)
        q_embed = (q * cos) + (rotate_half(q) * sin)
        k_embed = (k * cos) + (rotate_half(k) * sin)
        return q_embed, k_embed


def liger(model, q, k, cos, sin):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_rope

    return liger_rope(q, k, cos.unsqueeze(0), sin.unsqueeze(0))


PEERS = {"liger": liger}


def get_inputs():
    q = torch.randn(batch, heads, seq, head_dim)
    k = torch.randn(batch, kv_heads, seq, head_dim)
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    positions = torch.arange(seq, dtype=torch.int64).float()
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return [q, k, emb.cos(), emb.sin()]


def get_init_inputs():
    return []
