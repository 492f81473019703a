# Correct control: SwiGLU in CUDA C++ through load_inline (one thread per element, fp32 math).
# expect: accepted
# task: swiglu
# gpu: yes
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
template <typename T>
__global__ void swiglu_kernel(const T* g, const T* u, T* out, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) { float a = (float)g[i]; out[i] = (T)(a / (1.0f + expf(-a)) * (float)u[i]); }
}
torch::Tensor swiglu(torch::Tensor gate, torch::Tensor up) {
    auto g = gate.contiguous(), u = up.contiguous();
    auto out = torch::empty_like(g);
    long n = g.numel();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "swiglu", [&] {
        swiglu_kernel<scalar_t><<<(n + 255) / 256, 256>>>(g.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(),
                                                          out.data_ptr<scalar_t>(), n);
    });
    return out;
}
"""
_ext = load_inline("kw_control_swiglu", cpp_sources="torch::Tensor swiglu(torch::Tensor gate, torch::Tensor up);",
                   cuda_sources=SOURCE, functions=["swiglu"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, gate, up):
        return _ext.swiglu(gate, up)
