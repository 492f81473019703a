"""Max and argmin over a middle dim of input holding NaN and -inf: torch's max keeps a NaN and its
argmin points at the first NaN of the row, where tl.max/tl.argmin would skip it."""

import torch
import torch.nn as nn

batch = 5
length = 41
inner = 6


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.max(x, dim=1)[0], torch.argmin(x, dim=1)


def get_inputs():
    x = torch.randn(batch, length, inner)
    flat = x.view(-1)
    flat[5::13] = float("nan")
    flat[2::17] = float("-inf")
    return [x]


def get_init_inputs():
    return []
