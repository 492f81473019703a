"""BatchNorm2d as the verifier runs it (eval): running statistics and an affine map per channel, a
(C,) vector broadcast along dim 1 of an (N, C, H, W) input. The statistics are not the 0/1 defaults,
so a wrong broadcast shows."""

import torch
import torch.nn as nn

batch = 9
channels = 11
height = 13
width = 10


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1.0, 1.0)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.normal_()
            self.bn.bias.normal_()

    def forward(self, x):
        return self.bn(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


def get_init_inputs():
    return [channels]
