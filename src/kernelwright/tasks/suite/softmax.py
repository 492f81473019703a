"""Softmax over the last dimension of (tokens, vocab) logits, computed in fp32 and cast back.

This is the sampling-time softmax over LM-head logits (and the attention-probabilities softmax of eager
attention, e.g. transformers.models.llama.modeling_llama.eager_attention_forward, which does
softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)): y = softmax(x.float(), -1).to(x.dtype).
"""

import torch
import torch.nn as nn

tokens = 8192
vocab = 32000

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, vocab=32000),     # Llama-2 / Mistral vocab
    dict(tokens=4096, vocab=128256),    # Llama-3 vocab
    dict(tokens=4096, vocab=151936),    # Qwen2/Qwen3 vocab
    dict(tokens=1024, vocab=128256),
    dict(tokens=128, vocab=128256),     # decode-time sampling batch
]
DESCRIPTION = "Softmax over the last dim of (tokens, vocab) logits, fp32 math, cast back"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x.float(), dim=-1).to(x.dtype)


def native(model, x):
    return torch.softmax(x, dim=-1)


NATIVE = native


def liger(model, x):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_softmax

    return liger_softmax(x)


PEERS = {"liger": liger}


def get_inputs():
    return [2.0 * torch.randn(tokens, vocab)]


def get_init_inputs():
    return []
