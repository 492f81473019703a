"""Activations torch keeps as single ATen ops (leaky_relu, elu, selu, celu, hardtanh, softplus,
hardsigmoid, hardswish), summed so that any one decomposed wrongly changes the output."""

import torch
import torch.nn as nn
import torch.nn.functional as F

rows = 37
cols = 96


class Model(nn.Module):
    def __init__(self, slope: float = 0.1, alpha: float = 0.7):
        super().__init__()
        self.slope = slope
        self.alpha = alpha

    def forward(self, x):
        return (F.leaky_relu(x, self.slope) + 2.0 * F.elu(x, self.alpha) + 3.0 * torch.selu(x)
                + 4.0 * F.celu(x, 1.3) + 5.0 * F.hardtanh(x, -0.5, 0.25) + 6.0 * F.softplus(x)
                + 7.0 * F.hardsigmoid(x) + 8.0 * F.hardswish(x) + 9.0 * torch.relu(x))


def get_inputs():
    return [3.0 * torch.randn(rows, cols)]


def get_init_inputs():
    return [0.1, 0.7]
