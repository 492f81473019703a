# Cheat: computes silu in numpy on the host; no kernel is launched at all.
# expect: no_kernel|exception
# task: silu
# note: on a GPU .numpy() of a CUDA tensor raises, so there the cheat ends as an exception.
import numpy as np
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        a = x.float().numpy()
        return torch.from_numpy(a / (1.0 + np.exp(-a))).to(x.dtype)
