"""GELU, exact (erf) form, elementwise on (tokens, intermediate) MLP activations.

The transformers "gelu" activation, transformers.activations.GELUActivation, used by Falcon, BERT,
ViT and Whisper: y = 0.5 * x * (1 + erf(x / sqrt(2))), i.e. F.gelu(x).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
intermediate = 18176

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, intermediate=18176),    # Falcon-7B
    dict(tokens=4096, intermediate=32768),    # Falcon-40B
    dict(tokens=16384, intermediate=8192),    # Falcon-style 2048-wide model (4x MLP)
    dict(tokens=128, intermediate=32768),     # decode batch
]
REPLACES = "transformers.activations.GELUActivation"
DESCRIPTION = "GELU, exact erf form (the transformers 'gelu' activation), elementwise"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.gelu(x)


def native(model, x):
    return F.gelu(x)


NATIVE = native


def get_inputs():
    return [torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []
