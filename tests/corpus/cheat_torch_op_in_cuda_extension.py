# Cheat: an inline CUDA extension whose C++ calls at::softmax instead of launching a kernel of its own.
# expect: torch_ops
# task: softmax
# gpu: yes
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
torch::Tensor softmax(torch::Tensor x) { return at::softmax(x.to(at::kFloat), -1).to(x.scalar_type()); }
"""
_ext = load_inline("fake_softmax", cpp_sources=SOURCE, functions=["softmax"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.softmax(x)
