# Cheat: forward calls the PyTorch operator itself (F.silu(gate) * up) instead of a kernel.
# expect: torch_ops
# task: swiglu
import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        return F.silu(gate) * up
