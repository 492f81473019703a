# Bug: a CUDA C++ kernel reads shared memory that no thread wrote (a race and an uninitialised read).
# expect: nondeterministic|mismatch|nonfinite_output
# task: silu
# gpu: yes
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
__global__ void silu_kernel(const float* x, float* out, long n) {
    __shared__ float tile[256];
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (threadIdx.x < 128 && i < n) tile[threadIdx.x] = x[i];
    // no __syncthreads: each thread reads its neighbour's slot (a race), and slots >= 128 nobody wrote
    if (i < n) { float v = tile[(threadIdx.x + 1) % 256]; out[i] = v / (1.0f + __expf(-v)); }
}
torch::Tensor silu(torch::Tensor x) {
    auto xf = x.contiguous().to(torch::kFloat);
    auto out = torch::empty_like(xf);
    long n = xf.numel();
    silu_kernel<<<(n + 255) / 256, 256>>>(xf.data_ptr<float>(), out.data_ptr<float>(), n);
    return out.to(x.scalar_type());
}
"""
_ext = load_inline("bad_silu", cpp_sources="torch::Tensor silu(torch::Tensor x);", cuda_sources=SOURCE, functions=["silu"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.silu(x)
