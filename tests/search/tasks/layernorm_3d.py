"""LayerNorm over the three trailing dims (C, H, W) with an affine weight and bias of that shape."""

import torch
import torch.nn as nn

batch = 9
channels = 11
height = 13
width = 10


class Model(nn.Module):
    def __init__(self, normalized_shape):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape)
        with torch.no_grad():
            self.ln.weight.normal_()
            self.ln.bias.normal_()

    def forward(self, x):
        return self.ln(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width) + 0.5]


def get_init_inputs():
    return [(channels, height, width)]
