"""KernelBench 40_LayerNorm, scaled down: nn.LayerNorm over (features, dim1, dim2), rows of 262,144
elements (4M in KernelBench's own file), the shape where a plain running sum per lane loses fp32's
precision."""

import torch
import torch.nn as nn

batch_size = 16
features = 16
dim1 = 128
dim2 = 128


class Model(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super(Model, self).__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x)


def get_inputs():
    return [torch.rand(batch_size, features, dim1, dim2)]


def get_init_inputs():
    return [(features, dim1, dim2)]
