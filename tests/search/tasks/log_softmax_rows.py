"""Log-softmax over dim 1 (KernelBench's LogSoftmax at a small shape): max, sum of exp, then the write."""

import torch
import torch.nn as nn

batch = 13
dim = 150


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.log_softmax(x, dim=1)


def get_inputs():
    return [torch.randn(batch, dim)]


def get_init_inputs():
    return []
