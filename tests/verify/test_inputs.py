import torch

from kernelwright.verify.inputs import redraw


def test_special_inputs_hold_nan_and_both_infinities_even_when_tiny():
    for shape in [(1,), (1, 3), (2, 5), (64, 64)]:
        x = redraw(torch.zeros(shape), "special", torch.Generator().manual_seed(0))
        assert x.shape == shape and torch.isnan(x).any()
        if x.numel() >= 3:
            assert (x == float("inf")).any() and (x == float("-inf")).any()
