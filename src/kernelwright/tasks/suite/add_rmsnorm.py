"""Fused residual add + RMSNorm, the pre-norm step between two sublayers of a Llama decoder layer.

transformers.models.llama.modeling_llama.LlamaDecoderLayer does `hidden_states = residual +
hidden_states` (in the activation dtype) and then applies LlamaRMSNorm to the sum; the sum is also the
next residual. This task returns both, as fused kernels do (vLLM's fused_add_rms_norm):

    r = x + residual; y = weight * (r.float() * rsqrt(mean(r.float()**2, -1) + eps)).to(r.dtype)
    return (y, r)
"""

import torch
import torch.nn as nn

tokens = 8192
hidden = 4096
eps = 1e-6

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, hidden=4096),    # Llama-3-8B / Mistral-7B prefill
    dict(tokens=32768, hidden=4096),   # long packed batch
    dict(tokens=8192, hidden=8192),    # Llama-3-70B
    dict(tokens=16384, hidden=2048),   # Llama-3.2-1B
    dict(tokens=256, hidden=5120),     # decode batch, Qwen2.5-14B
]
DESCRIPTION = "Residual add then Llama RMSNorm; returns (normed, new residual)"


class Model(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(hidden))
        self.eps = eps

    def forward(self, x, residual):
        r = x + residual
        input_dtype = r.dtype
        h = r.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return self.weight * h.to(input_dtype), r


def get_inputs():
    return [torch.randn(tokens, hidden), torch.randn(tokens, hidden)]


def get_init_inputs():
    return [hidden, eps]
