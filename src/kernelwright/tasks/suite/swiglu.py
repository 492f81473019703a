"""SwiGLU: the activation part of LlamaMLP, silu(gate) * up, on (tokens, intermediate) tensors.

transformers.models.llama.modeling_llama.LlamaMLP computes
down_proj(act_fn(gate_proj(x)) * up_proj(x)) with act_fn = silu (Llama, Mistral, Qwen2/3). This task is
the elementwise middle: given the gate and up projections, y = F.silu(gate) * up, in the input dtype.
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
    dict(tokens=16384, intermediate=14336),   # long packed batch
    dict(tokens=128, intermediate=14336),     # decode batch
]
DESCRIPTION = "SwiGLU activation of a Llama MLP: silu(gate) * up"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        return F.silu(gate) * up


def liger(model, gate, up):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_swiglu

    return liger_swiglu(gate, up)


PEERS = {"liger": liger}


def get_inputs():
    return [torch.randn(tokens, intermediate), torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []
