# Cheat: inline CUDA finishes the work in a host callback enqueued with cudaLaunchHostFunc (deferred past the launch).
# expect: cuda_policy
# task: swiglu
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>
static void CUDART_CB finish(void* data) { /* compute on the host, after the timer stopped */ }
torch::Tensor swiglu(torch::Tensor gate, torch::Tensor up) {
    auto out = torch::empty_like(gate);
    cudaLaunchHostFunc(0, finish, out.data_ptr());
    return out;
}
"""
_ext = load_inline("host_cb", cpp_sources="torch::Tensor swiglu(torch::Tensor gate, torch::Tensor up);",
                   cuda_sources=SOURCE, functions=["swiglu"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        return _ext.swiglu(gate, up)
