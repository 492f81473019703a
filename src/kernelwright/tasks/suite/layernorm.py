"""LayerNorm over the last dimension with a learned weight and bias, as torch.nn.LayerNorm.

This is the norm of GPT-NeoX/Pythia, Falcon, Phi-2, StableLM and BLOOM (transformers uses nn.LayerNorm
directly there). Like nn.LayerNorm it is applied to the input as is (no explicit upcast in Python; the
native kernel accumulates in fp32): y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
hidden = 4096
eps = 1e-5

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, hidden=4096),    # Falcon-7B-like (4544 there) / StableLM
    dict(tokens=32768, hidden=2560),   # Phi-2, long packed batch
    dict(tokens=8192, hidden=8192),    # Falcon-40B-like
    dict(tokens=16384, hidden=2048),   # Pythia-1.4B / StableLM-2-1.6B
    dict(tokens=256, hidden=5120),     # decode batch, GPT-NeoX-20B-like
]
DESCRIPTION = "LayerNorm over the last dim with weight and bias (nn.LayerNorm)"


class Model(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(hidden))
        self.bias = nn.Parameter(0.1 * torch.randn(hidden))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


def native(model, x):
    return F.layer_norm(x, (x.shape[-1],), model.weight, model.bias, model.eps)


NATIVE = native


def liger(model, x):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_layer_norm

    return liger_layer_norm(x, model.weight, model.bias, model.eps)


PEERS = {"liger": liger}


def get_inputs():
    # a per-row offset, so a kernel that skips the mean subtraction fails
    return [torch.randn(tokens, hidden) + torch.randn(tokens, 1)]


def get_init_inputs():
    return [hidden, eps]
