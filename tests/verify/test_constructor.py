import types

import pytest

from kernelwright.errors import UsageError
from kernelwright.tasks import load_task
from kernelwright.verify.constructor import MAX_CASES, other_values, variations
from kernelwright.verify.verifier import plan_cases


def test_other_values_go_near_and_far_keeping_the_sign():
    assert other_values(1e-5) == [("near", 1.7e-5), ("far", 1e-3), ("far", 0.1)]
    assert other_values(1e-6) == [("near", 1.7e-6), ("far", 1e-4), ("far", 1e-2)]
    assert other_values(0.5) == [("near", 0.85), ("far", 50.0)]
    assert other_values(-2.0) == [("near", -3.4), ("far", -0.02)]
    assert [v for _, v in other_values(0.0)] == [1e-3, 0.5]


def test_only_floats_vary_unless_the_task_declares_values():
    plain = types.SimpleNamespace()
    assert [(p, v) for p, v, _ in variations(plain, [4096, 1e-6, True])] == [(1, 1.7e-6), (1, 1e-4), (1, 1e-2)]
    opted = types.SimpleNamespace(INIT_VALUES={0: [3]})
    assert variations(opted, [1, 0.5]) == [(0, 3, "declared"), (1, 0.85, "near"), (1, 50.0, "far")]
    assert len(variations(plain, [0.1, 0.2, 0.3])) == MAX_CASES  # a few cases, each argument's first value first
    with pytest.raises(UsageError, match="INIT_VALUES must map positions"):
        variations(types.SimpleNamespace(INIT_VALUES={5: [1]}), [1.0])


def test_rmsnorm_cases_carry_other_eps_values_with_the_models_built_on_them():
    cases = plan_cases(load_task("rmsnorm"), "cpu", seed=5)
    varied = [c for c in cases if c.init_varied]
    assert sorted(c.init_inputs[1] for c in varied) == [1.7e-6, 1e-4, 1e-2]
    assert all(c.model.eps == c.init_inputs[1] and c.dtype == "float32" for c in varied)
    assert all(c.describe()["init_inputs"] == c.init_inputs for c in varied)
    assert {c.distribution for c in varied} == {"small", "normal"}  # the near value where an eps shows
    assert len(varied) < len(cases) / 4 and not any(c.init_varied for c in cases[:-len(varied)])


def test_a_value_the_task_model_rejects_is_skipped_and_said(tmp_path):
    source = (load_task("rmsnorm").path).read_text().replace(
        "        self.eps = eps\n", "        if eps > 1e-3:\n            raise ValueError('eps too large')\n"
                                   "        self.eps = eps\n")
    task = tmp_path / "rmsnorm_small_eps.py"
    task.write_text(source)
    notes = []
    cases = plan_cases(load_task(task), "cpu", seed=5, notes=notes)
    assert sorted(c.init_inputs[1] for c in cases if c.init_varied) == [1.7e-6, 1e-4]
    assert len(notes) == 1 and "0.01 skipped: the task's own Model rejects it (ValueError: eps too large)" in notes[0]
