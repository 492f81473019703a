"""Mean cross-entropy loss of (tokens, vocab) LM logits against int64 targets, with ignored tokens.

The core of transformers' causal-LM loss (transformers.loss.loss_utils.ForCausalLMLoss, after the label
shift): logits are upcast to fp32 and F.cross_entropy(logits.float(), targets, ignore_index=-100) is the
mean over the targets that are not -100. The result is a 0-dim fp32 tensor for every logits dtype.
About 5% of the targets are -100 (padding/prompt tokens); the first target is never ignored.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
vocab = 32000
ignore_index = -100

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
SHAPES = [
    dict(tokens=8192, vocab=32000),     # Llama-2 / Mistral vocab
    dict(tokens=4096, vocab=128256),    # Llama-3 vocab
    dict(tokens=4096, vocab=151936),    # Qwen2/Qwen3 vocab
    dict(tokens=16384, vocab=32000),
    dict(tokens=1024, vocab=128256),
]
FIXED = ["ignore_index"]
# The last step, the mean over non-ignored rows, may stay in PyTorch as Liger-Kernel leaves it: it touches
# one value per token, not the logits.
ALLOWED_TORCH_OPS = ["sum", "ne", "div"]
DESCRIPTION = "Mean cross-entropy of LM logits vs targets (ignore_index=-100), fp32 loss"


class Model(nn.Module):
    def __init__(self, ignore_index):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        return F.cross_entropy(logits.float(), targets, ignore_index=self.ignore_index)


def native(model, logits, targets):
    return F.cross_entropy(logits, targets, ignore_index=model.ignore_index).float()


NATIVE = native


def liger(model, logits, targets):
    """Liger-Kernel's Triton implementation (a peer baseline; skipped when liger-kernel is not installed)."""
    from liger_kernel.transformers.functional import liger_cross_entropy

    return liger_cross_entropy(logits, targets, ignore_index=model.ignore_index)  # writes its gradient into logits


PEERS = {"liger": liger}


def get_inputs():
    logits = 2.0 * torch.randn(tokens, vocab)
    targets = torch.randint(0, vocab, (tokens,), dtype=torch.int64)
    ignored = torch.rand(tokens) < 0.05
    ignored[0] = False
    targets[ignored] = ignore_index
    return [logits, targets]


def get_init_inputs():
    return [ignore_index]
