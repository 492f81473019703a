"""GELU, tanh approximation, elementwise on (tokens, intermediate) MLP activations.

The transformers "gelu_pytorch_tanh" activation, transformers.activations.GELUTanh (named
PytorchGELUTanh before transformers 4.55), used by Gemma, Gemma 2, StarCoder2 and SigLIP:
y = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3))), i.e. F.gelu(x, approximate="tanh").
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
intermediate = 16384

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, intermediate=16384),    # Gemma-2B
    dict(tokens=8192, intermediate=24576),    # Gemma-7B
    dict(tokens=16384, intermediate=14336),   # Gemma-2-9B
    dict(tokens=4096, intermediate=9216),     # Gemma-2-2B
    dict(tokens=128, intermediate=24576),     # decode batch
]
REPLACES = "transformers.activations.GELUTanh"
DESCRIPTION = "GELU with the tanh approximation (gelu_pytorch_tanh), elementwise"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


def native(model, x):
    return F.gelu(x, approximate="tanh")


NATIVE = native


def get_inputs():
    return [torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []
