"""Gated RMSNorm of Mamba-2: silu(gate) multiplies the input before the RMS normalisation.

transformers.models.mamba2.modeling_mamba2.MambaRMSNormGated (also Zamba2), applied to the SSM output
of width intermediate_size (expand * d_model) with the z branch as the gate:

    h = x.float() * silu(gate.float()); h = h * rsqrt(mean(h**2, -1) + eps); y = weight * h.to(x.dtype)

The knob `hidden` is the norm's width (the mixer's intermediate size). The gate is required here.
"""

import torch
import torch.nn as nn

tokens = 8192
hidden = 8192
eps = 1e-6

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, hidden=8192),    # Mamba-Codestral-7B (d_model 4096, expand 2)
    dict(tokens=8192, hidden=5120),    # Mamba2-2.7B
    dict(tokens=16384, hidden=4096),   # Mamba2-1.3B
    dict(tokens=32768, hidden=4096),   # long packed batch
    dict(tokens=256, hidden=8192),     # decode batch
]
REPLACES = "transformers.models.mamba2.modeling_mamba2.MambaRMSNormGated"
DESCRIPTION = "Mamba-2 gated RMSNorm: rmsnorm(x * silu(gate)) * weight"


class Model(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(hidden))
        self.eps = eps

    def forward(self, hidden_states, gate):
        input_dtype = hidden_states.dtype
        h = hidden_states.to(torch.float32)
        h = h * nn.functional.silu(gate.to(torch.float32))
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return self.weight * h.to(input_dtype)


def get_inputs():
    return [torch.randn(tokens, hidden), torch.randn(tokens, hidden)]


def get_init_inputs():
    return [hidden, eps]
