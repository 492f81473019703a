"""Mean and min over a middle dim whose inner extent (37) is odd: a column schedule's inner tiles end in a
tail, and its reduced dim (50) in a partial chunk."""

import torch
import torch.nn as nn

batch = 3
length = 50
inner = 37


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.mean(x, dim=1), torch.min(x, dim=1)[0]


def get_inputs():
    return [torch.randn(batch, length, inner)]


def get_init_inputs():
    return []
