# Correct control: RMSNorm in CUDA C++ through load_inline (fp32 statistics, shared-memory tree reduction, __syncthreads between steps).
# expect: accepted
# task: rmsnorm
# gpu: yes
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>
template <typename T>
__global__ void rmsnorm_kernel(const T* x, const T* w, T* out, int n_cols, float eps) {
    long row = blockIdx.x;
    __shared__ float partial[256];
    float acc = 0.f;
    for (int c = threadIdx.x; c < n_cols; c += blockDim.x) { float v = (float)x[row * n_cols + c]; acc += v * v; }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    float rstd = rsqrtf(partial[0] / n_cols + eps);
    for (int c = threadIdx.x; c < n_cols; c += blockDim.x) {
        T h = (T)((float)x[row * n_cols + c] * rstd);
        out[row * n_cols + c] = (T)((float)h * (float)w[c]);
    }
}
torch::Tensor rmsnorm(torch::Tensor x, torch::Tensor w, double eps) {
    auto x2 = x.contiguous();
    auto out = torch::empty_like(x2);
    int n_cols = x2.size(-1);
    long rows = x2.numel() / n_cols;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x2.scalar_type(), "rmsnorm", [&] {
        rmsnorm_kernel<scalar_t><<<rows, 256>>>(x2.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                                 out.data_ptr<scalar_t>(), n_cols, (float)eps);
    });
    return out;
}
"""
_ext = load_inline("kw_control_rmsnorm", cpp_sources="torch::Tensor rmsnorm(torch::Tensor x, torch::Tensor w, double eps);",
                   cuda_sources=SOURCE, functions=["rmsnorm"])


class ModelNew(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        return _ext.rmsnorm(x, self.weight.contiguous(), self.eps)
