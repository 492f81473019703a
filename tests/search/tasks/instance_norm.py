"""InstanceNorm2d: statistics per (sample, channel) over the spatial dims (torch views (N, C, H, W)
as (1, N*C, H, W) and runs batch norm on it)."""

import torch
import torch.nn as nn

batch = 9
channels = 11
height = 13
width = 10
# torch refuses instance norm over a single spatial element, so the spatial dims are not shrunk to 1
FIXED = ["height", "width"]


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [3.0 * torch.randn(batch, channels, height, width) + 1.0]


def get_init_inputs():
    return [channels]
