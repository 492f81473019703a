import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from kernelwright.tasks.knobs import PRIMES, draw_shapes, fit_budget, tiny_shape
from kernelwright.tasks.task import Task


def make_task(knobs, multiple_of=None):
    return Task(name="t", path=Path("t.py"), knobs=knobs, knob_multiple_of=multiple_of or {})


def test_draws_at_least_eight_distinct_shapes_with_the_special_ones():
    task = make_task({"tokens": 8192, "hidden": 4096})
    shapes = draw_shapes(task, count=8, budget=2**14, seed=0)
    labels = [label for label, _ in shapes]
    assert len(shapes) >= 8
    assert len({tuple(s.values()) for _, s in shapes}) == len(shapes)
    assert {"tiny", "one-row", "primes", "pow2-plus-one"} <= set(labels)
    assert dict(shapes[labels.index("tiny")][1]) == {"tokens": 1, "hidden": 1}
    assert shapes[labels.index("one-row")][1]["tokens"] == 1
    assert all(v in PRIMES for v in shapes[labels.index("primes")][1].values())
    assert any(v % 2 == 1 and v > 1 for v in shapes[labels.index("pow2-plus-one")][1].values())
    assert {"tokens": 8192, "hidden": 4096} not in [s for _, s in shapes]


@settings(max_examples=60, deadline=None)
@given(knobs=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(9, 10**6), min_size=1),
       budget=st.integers(2**8, 2**20), seed=st.integers(0, 2**16), step=st.sampled_from([1, 2, 8]))
def test_shapes_respect_budget_caps_and_multiples(knobs, budget, seed, step):
    name = next(iter(knobs))
    knobs[name] = max(knobs[name] // step * step, step)
    task = make_task(knobs, {name: step})
    for _, shape in draw_shapes(task, count=8, budget=budget, seed=seed, leading_cap=257):
        assert set(shape) == set(knobs)
        assert all(1 <= shape[k] <= knobs[k] for k in knobs)
        assert shape[name] % step == 0
        minimal = math.prod(tiny_shape(task).values())
        assert math.prod(shape.values()) <= max(budget, minimal * 2 ** len(knobs))


def test_fit_budget_keeps_odd_sizes_odd():
    task = make_task({"rows": 100000, "cols": 100000})
    shape = fit_budget(task, {"rows": 4099, "cols": 4099}, 2**14)
    assert math.prod(shape.values()) <= 2**14
    assert all(v % 2 == 1 for v in shape.values())


def test_the_budget_counts_input_dims_that_are_no_knob(tmp_path):
    # KernelBench's 99_TripletMarginLoss: a batch knob over a fixed 8192-wide row; the knob product alone let
    # a drawn shape keep the whole 32768-row batch (3 GB of inputs to verify one probe)
    path = tmp_path / "triplet.py"
    path.write_text("import torch\nbatch_size = 32768\ninput_shape = (8192,)\n"
                    "class Model(torch.nn.Module):\n    def forward(self, a):\n        return a\n"
                    "def get_inputs():\n    return [torch.rand(batch_size, *input_shape)]\n"
                    "def get_init_inputs():\n    return []\n")
    task = Task(name="triplet", path=path, knobs={"batch_size": 32768})
    shapes = draw_shapes(task, count=8, budget=2**22, seed=0)
    assert max(s["batch_size"] for _, s in shapes) * 8192 <= 2**22
    assert fit_budget(task, {"batch_size": 32768}, 2**22) == {"batch_size": 2**22 // 8192}


# Synthetic KernelBench-style files whose Model accepts only some shapes (issue 11: 35_GroupNorm_ and
# 100_HingeLoss gave no kernel because no shrunk shape was legal).
GROUP_NORM = """import torch
batch_size = 112
features = 64
num_groups = 8
dim1 = 40
class Model(torch.nn.Module):
    def __init__(self, num_features, num_groups):
        super().__init__()
        self.gn = torch.nn.GroupNorm(num_groups=num_groups, num_channels=num_features)
    def forward(self, x):
        return self.gn(x)
def get_inputs():
    return [torch.rand(batch_size, features, dim1)]
def get_init_inputs():
    return [features, num_groups]
"""
# predictions (batch, dim) * targets (batch,) broadcast only when the two sizes agree
TIED = """import torch
batch_size = 96
dim = 96
class Model(torch.nn.Module):
    def forward(self, predictions, targets):
        return torch.mean(torch.clamp(1 - predictions * targets, min=0))
def get_inputs():
    return [torch.rand(batch_size, dim), torch.rand(batch_size)]
def get_init_inputs():
    return []
"""
# KernelBench's HingeLoss: the row width is a tuple, no knob, so the batch can never change
HINGE = TIED.replace("dim = 96", "input_shape = (96,)").replace("batch_size, dim)", "batch_size, *input_shape)")
# heads is a knob too: hidden must stay a multiple of it
HEADS = """import torch
tokens = 50
hidden = 384
heads = 12
class Model(torch.nn.Module):
    def __init__(self, heads):
        super().__init__()
        self.heads = heads
    def forward(self, x):
        return x.view(x.shape[0], self.heads, -1).softmax(-1)
def get_inputs():
    return [torch.rand(tokens, hidden)]
def get_init_inputs():
    return [heads]
"""


def _task_file(tmp_path, name, source):
    from kernelwright.tasks.task import load_task

    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return load_task(path)


def _runs(task, shape) -> bool:
    import torch

    from kernelwright.tasks.task import instantiate

    module = task.load()
    inputs, init = instantiate(module, {**task.knobs, **shape})
    try:
        with torch.no_grad():
            module.Model(*init).eval()(*inputs)  # as the verifier builds it
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.parametrize("name, source, check", [
    ("group_norm", GROUP_NORM, lambda s: s["features"] % 8 == 0),
    ("tied", TIED, lambda s: s["dim"] == s["batch_size"]),
    ("hinge", HINGE, lambda s: s["batch_size"] == 96),
    ("heads", HEADS, lambda s: s["heads"] == 12 and s["hidden"] % 12 == 0),
], ids=["group_norm", "tied", "hinge", "heads"])
def test_drawn_and_fitted_shapes_are_ones_the_model_accepts(tmp_path, name, source, check):
    task = _task_file(tmp_path, name, source)
    drawn = [s for _, s in draw_shapes(task, count=8, budget=2**12, seed=0, leading_cap=257)]
    # the fuzzer draws on its own and only fits; a bench on the CPU fits the task's own shape
    fitted = [fit_budget(task, {k: 13 for k in task.knobs}, 2**12), fit_budget(task, dict(task.knobs), 2**10)]
    for shape in drawn + fitted:
        assert check(shape), shape
        # GroupNorm refuses a group of one value at any channel count (the verifier skips such a case)
        one_per_group = name == "group_norm" and shape["batch_size"] * shape["features"] // 8 * shape["dim1"] == 1
        assert _runs(task, shape) or one_per_group, shape


def test_the_inferred_relation_is_the_one_the_model_needs(tmp_path):
    from kernelwright.tasks.knobs import relations

    def inferred(name, source):
        task = _task_file(tmp_path, name, source)
        return task, relations(task)

    task, rel = inferred("group_norm", GROUP_NORM)
    assert rel.multiple_of == (("features", ("num_groups", 8)),) and not rel.tied and not rel.fixed
    assert "`features` a multiple of `num_groups` (8)" in rel.note(task)
    assert "must be divisible by num_groups" in rel.note(task)
    assert inferred("tied", TIED)[1].tied == (("dim", "batch_size"),)
    assert inferred("hinge", HINGE)[1].fixed == ("batch_size",)
    _, rel = inferred("heads", HEADS)
    assert rel.fixed == ("heads",) and rel.multiple_of == (("hidden", ("heads", 12)),)
    # a Model that runs at any shape needs none
    _, rel = inferred("plain", TIED.replace("predictions * targets", "predictions"))
    assert not rel and rel.note(task) == ""
