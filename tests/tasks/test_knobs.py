import math
from pathlib import Path

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
