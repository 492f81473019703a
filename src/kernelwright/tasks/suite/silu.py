"""SiLU (swish), elementwise on (tokens, intermediate) MLP activations.

The transformers "silu" activation (ACT2FN["silu"] is torch.nn.SiLU), used by Llama, Mistral and Qwen
MLPs: y = x * sigmoid(x), i.e. F.silu(x).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
intermediate = 14336

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, intermediate=14336),    # Llama-3-8B / Mistral-7B
    dict(tokens=8192, intermediate=11008),    # Llama-2-7B
    dict(tokens=4096, intermediate=28672),    # Llama-3-70B
    dict(tokens=32768, intermediate=14336),   # long packed batch
    dict(tokens=128, intermediate=14336),     # decode batch
]
DESCRIPTION = "SiLU / swish, x * sigmoid(x), elementwise"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.silu(x)


def native(model, x):
    return F.silu(x)


NATIVE = native


def get_inputs():
    return [torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []
