"""RMSNorm over the last dimension, as transformers' LlamaRMSNorm (also Qwen2/Qwen3/Mistral RMSNorm).

transformers.models.llama.modeling_llama.LlamaRMSNorm: upcast to fp32, divide by the root mean square
(eps inside the square root), cast back to the input dtype, then multiply by the learned weight:

    h = x.float(); h = h * rsqrt(mean(h**2, -1) + eps); y = weight * h.to(x.dtype)
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

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
REPLACES = "transformers.models.llama.modeling_llama.LlamaRMSNorm"
DESCRIPTION = "Llama RMSNorm over the last dim (fp32 statistics, weight applied in the input dtype)"


class Model(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(hidden))
        self.eps = eps

    def forward(self, x):
        input_dtype = x.dtype
        h = x.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return self.weight * h.to(input_dtype)


def native(model, x):
    return F.rms_norm(x, (x.shape[-1],), model.weight, model.eps)


NATIVE = native


def liger(model, x):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_rms_norm

    return liger_rms_norm(x, model.weight, model.eps, casting_mode="llama", in_place=False)


PEERS = {"liger": liger}


def get_inputs():
    return [torch.randn(tokens, hidden)]


def get_init_inputs():
    return [hidden, eps]
