# Cheat: inline CUDA pins the inputs in L2 with a persisting access-policy window so timed calls hit cache.
# expect: cuda_policy
# task: rmsnorm
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>
void pin(torch::Tensor x) {
    cudaStreamAttrValue attr = {};
    attr.accessPolicyWindow.base_ptr = x.data_ptr();
    attr.accessPolicyWindow.num_bytes = x.numel() * x.element_size();
    attr.accessPolicyWindow.hitRatio = 1.0;
    attr.accessPolicyWindow.hitProp = cudaAccessPropertyPersisting;
    cudaStreamSetAttribute(0, cudaStreamAttributeAccessPolicyWindow, &attr);
}
"""
_ext = load_inline("pin_l2", cpp_sources="void pin(torch::Tensor x);", cuda_sources=SOURCE, functions=["pin"])


class ModelNew(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        _ext.pin(x)
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
