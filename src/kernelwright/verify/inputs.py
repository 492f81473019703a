"""Inputs for verification: the task's own tensors, redrawn from several distributions, in each dtype.

Every case gets a fresh secret seed; floating inputs are redrawn from the case's distribution and cast
to its dtype, integer inputs (targets, positions) are left as the task made them. The reference model is
the task's ``Model`` with parameters rounded to the case's dtype, so parameter rounding is never counted
as the candidate's error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from kernelwright.tasks.task import instantiate

# "task" keeps the task's own tensors; the others redraw every floating input. The cycle is ordered
# so that, with three dtypes, consecutive shapes give every dtype the task's own and signed inputs.
DISTRIBUTIONS = ("task", "normal", "small", "uniform", "heavy_tailed", "large")
# Drawn only by the fuzzer: magnitudes near the dtype's range (|x|² around the dtype's largest value, where
# a kernel that squares before upcasting overflows) and special values (a few NaN and ±inf) that every
# op defines by propagation.
FUZZ_DISTRIBUTIONS = ("extreme", "special")


@dataclass
class Case:
    """One verification case: a shape, a dtype, a distribution and a seed, with its built objects."""

    id: str
    label: str
    knobs: dict[str, int]
    dtype: str
    distribution: str
    seed: int
    inputs: list[Any]
    init_inputs: list[Any]
    model: Any  # the task's Model in the case dtype, on CPU
    variants: list["Case"] = field(default_factory=list)  # more input sets of this shape, run after it


    def job(self, *, repeat: int) -> dict[str, Any]:
        """What the worker needs to run ModelNew on this case (no reference outputs, ever)."""
        return dict(id=self.id, seed=self.seed, dtype=self.dtype, init_inputs=self.init_inputs,
                    state_dict={k: v.clone() for k, v in self.model.state_dict().items()},
                    inputs=self.inputs, repeat=repeat, variants=[v.inputs for v in self.variants],
                    probe=bool(self.variants))

    def describe(self) -> dict[str, Any]:
        return dict(id=self.id, shape=self.label, knobs=self.knobs, dtype=self.dtype,
                    distribution=self.distribution, seed=self.seed)


def redraw(x, distribution: str, generator, dtype: str = "float32"):
    import torch

    if distribution == "task":
        return x
    shape = x.shape
    if distribution == "normal":
        return torch.randn(shape, generator=generator)
    if distribution == "uniform":
        return torch.rand(shape, generator=generator) * 2 - 1
    if distribution == "heavy_tailed":
        # Student-t with 3 degrees of freedom: normal over the square root of a scaled chi-square.
        z = torch.randn(shape, generator=generator)
        chi = torch.randn((3, *shape), generator=generator).pow(2).sum(0) / 3
        return z / chi.clamp_min(1e-3).sqrt()
    if distribution == "small":  # where an epsilon inside a norm stops being negligible
        return torch.randn(shape, generator=generator) * 1e-3
    if distribution == "large":
        return torch.randn(shape, generator=generator) * 100
    if distribution == "extreme":
        return torch.randn(shape, generator=generator) * (torch.finfo(getattr(torch, dtype)).max ** 0.5 / 4)
    if distribution == "special":
        x = torch.randn(shape, generator=generator)
        pick = torch.rand(shape, generator=generator)
        x[pick < 0.01] = float("nan")
        x[(pick >= 0.01) & (pick < 0.02)] = float("inf")
        x[(pick >= 0.02) & (pick < 0.03)] = float("-inf")
        # at 1% each a small fuzz shape would often draw none: every tensor gets at least one of each
        flat = x.view(-1)
        at = torch.randperm(flat.numel(), generator=generator)[:3]
        flat[at] = torch.tensor([float("nan"), float("inf"), float("-inf")])[:len(at)]
        return x
    raise ValueError(f"unknown distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS + FUZZ_DISTRIBUTIONS)}")


def build_case(module: ModuleType, *, case_id: str, label: str, knobs: dict[str, int], dtype: str,
               distribution: str, seed: int, model_seed: int | None = None) -> Case:
    """Inputs drawn from ``seed``; Model's parameters from ``model_seed`` (default: ``seed``), so several
    input sets can share one model."""
    import torch

    torch.manual_seed(seed)
    inputs, init_inputs = instantiate(module, knobs)
    generator = torch.Generator().manual_seed(seed + 1)
    torch_dtype = getattr(torch, dtype)
    cast = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            x = redraw(x.cpu().float(), distribution, generator, dtype).to(torch_dtype).contiguous()
        cast.append(x.cpu() if isinstance(x, torch.Tensor) else x)
    model_seed = seed if model_seed is None else model_seed
    torch.manual_seed(model_seed)
    model = module.Model(*init_inputs).to(torch_dtype).eval()
    return Case(case_id, label, dict(knobs), dtype, distribution, model_seed, cast, init_inputs, model)


def reference_outputs(case: Case, device: str) -> tuple[list, list]:
    """(float64 reference, the task's Model at the case dtype), both as lists of tensors on ``device``
    (judging a benchmark-size case on the GPU is far faster than copying it to the CPU first)."""
    import torch

    def run(model, inputs):
        with torch.no_grad():
            out = model.to(device)(*[x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs])
        items = list(out) if isinstance(out, (tuple, list)) else [out]
        return [torch.as_tensor(o).detach().to(device) for o in items]

    eager = run(copy.deepcopy(case.model), case.inputs)
    as_double = [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in case.inputs]
    reference = run(copy.deepcopy(case.model).double(), as_double)
    return reference, eager
