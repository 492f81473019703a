"""SiLUActivation from transformers.activations, as profiled in qwen3 prefill (bfloat16, cuda:0).

SiLUActivation: 1.5% of a prefill step of qwen3 (36 calls, memory-bound, 88.5% of the roofline; at the roofline the model would run 1.002x faster)
"""

import torch
import torch.nn as nn

input_0 = 1
input_1 = 2048
hidden = 12288

KNOB_MULTIPLE_OF = {'input_0': 1}  # small input dims stay knobs
DTYPES = [torch.bfloat16]
SHAPES = [{'input_0': 1, 'input_1': 2048, 'hidden': 12288}]
REPLACES = "transformers.activations.SiLUActivation"
DESCRIPTION = 'SiLUActivation: 1.5% of a prefill step of qwen3 (36 calls, memory-bound, 88.5% of the roofline; at the roofline the model would run 1.002x faster)'


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, input):
        return nn.functional.silu(input)


def get_inputs():
    return [torch.randn(input_0, input_1, hidden)]


def get_init_inputs():
    return []
