"""Squared ReLU, elementwise on (tokens, intermediate) MLP activations.

The transformers "relu2" activation, transformers.activations.ReLUSquaredActivation, used by the
Nemotron family (Nemotron-4, Minitron, Nemotron-H MLPs): y = relu(x) ** 2, in the input dtype.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
intermediate = 16384

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, intermediate=16384),    # Minitron-8B
    dict(tokens=8192, intermediate=24576),    # Nemotron-4-15B
    dict(tokens=4096, intermediate=21504),    # Nemotron-H-8B
    dict(tokens=16384, intermediate=9216),    # Nemotron-Mini-4B
    dict(tokens=128, intermediate=24576),     # decode batch
]
REPLACES = "transformers.activations.ReLUSquaredActivation"
DESCRIPTION = "Squared ReLU (the 'relu2' activation of Nemotron), elementwise"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.square(F.relu(x))


def liger(model, x):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_relu_squared

    return liger_relu_squared(x)


PEERS = {"liger": liger}


def get_inputs():
    return [torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []
