"""GeGLU: the activation part of GemmaMLP, gelu_tanh(gate) * up, on (tokens, intermediate) tensors.

transformers.models.gemma.modeling_gemma.GemmaMLP computes
down_proj(act_fn(gate_proj(x)) * up_proj(x)) with act_fn = gelu_pytorch_tanh (Gemma, Gemma 2/3). This
task is the elementwise middle: y = F.gelu(gate, approximate="tanh") * up, in the input dtype.
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
DESCRIPTION = "GeGLU activation of a Gemma MLP: gelu_tanh(gate) * up"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        return F.gelu(gate, approximate="tanh") * up


def liger(model, gate, up):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_geglu

    return liger_geglu(gate, up)


PEERS = {"liger": liger}


def get_inputs():
    return [torch.randn(tokens, intermediate), torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []
