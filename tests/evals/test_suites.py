"""Suites: an Agent Skills evals.json (the evaluation guide's format) loads into cases; a bad one is one sentence."""

import json
import shutil

import pytest

from kernelwright.errors import UsageError
from kernelwright.evals.suites import load_eval_file, suite_cases
from kernelwright.tasks.task import SUITE_DIR


def skill_folder(tmp_path, evals):
    """A skill folder as the guide lays it out: evals/evals.json, fixtures under evals/files/."""
    files = tmp_path / "skill" / "evals" / "files"
    files.mkdir(parents=True)
    shutil.copyfile(SUITE_DIR / "gelu.py", files / "gelu.py")
    (files / "notes.md").write_text("hints")
    (tmp_path / "skill" / "evals" / "evals.json").write_text(json.dumps(evals))
    return tmp_path / "skill"


def test_an_evals_file_gives_one_case_per_eval_with_its_prompt_task_and_fixtures(tmp_path):
    folder = skill_folder(tmp_path, {"skill_name": "triton-kernels", "evals": [
        {"id": 1, "prompt": "Make GELU fast.", "files": ["evals/files/gelu.py", "files/notes.md"],
         "expected_output": "a fused kernel", "assertions": ["uses triton"]},
        {"id": "rms", "prompt": "Fuse the add and the norm.", "task": "add_rmsnorm"}]})
    first, second = suite_cases(str(folder))  # the skill folder finds evals/evals.json itself
    assert (first.name, first.path.name, first.prompt) == ("1_gelu", "gelu.py", "Make GELU fast.")
    assert [f.name for f in first.files] == ["notes.md"] and first.assertions == ("uses triton",)
    assert first.expected_output == "a fused kernel"
    assert (second.name, second.path) == ("rms_add_rmsnorm", SUITE_DIR / "add_rmsnorm.py")
    assert [c.name for c in suite_cases(str(folder / "evals" / "evals.json"), ["1"])] == ["1_gelu"]


@pytest.mark.parametrize("evals, words", [
    ([{"id": 1, "prompt": "x", "files": []}], 'no "evals" list'),
    ({"evals": []}, 'no "evals" list'),
    ({"evals": ["just a prompt"]}, "case 1 is not an object"),
    ({"evals": [{"prompt": "x", "files": ["files/gelu.py"]}]}, "case 1 has no id"),
    ({"evals": [{"id": 3, "files": ["files/gelu.py"]}]}, "case 3 has no prompt"),
    ({"evals": [{"id": 3, "prompt": "x", "files": ["files/missing.py"]}]}, "'files/missing.py' does not exist"),
    ({"evals": [{"id": 3, "prompt": "x", "files": ["files/notes.md"]}]}, "lists no .py file"),
    ({"evals": [{"id": 3, "prompt": "x", "files": "files/gelu.py"}]}, "files must be a list of strings"),
    ({"evals": [{"id": 3, "prompt": "x", "files": ["files/gelu.py"], "assertions": [1]}]}, "assertions must be"),
    ({"evals": [{"id": 3, "prompt": "x", "task": "no_such_task"}]}, "neither a file nor a bundled task"),
    ({"evals": [{"id": 1, "prompt": "x", "task": "gelu"}, {"id": 1, "prompt": "y", "task": "gelu"}]}, "two cases"),
])
def test_a_malformed_evals_file_is_one_sentence_naming_what_to_fix(tmp_path, evals, words):
    folder = skill_folder(tmp_path, evals)
    with pytest.raises(UsageError, match=words) as caught:
        load_eval_file(folder / "evals" / "evals.json")
    assert "\n" not in str(caught.value)


def test_an_evals_file_that_is_not_json_is_a_usage_error(tmp_path):
    path = tmp_path / "evals.json"
    path.write_text("{'single': 'quotes'}")
    with pytest.raises(UsageError, match="not valid JSON"):
        suite_cases(str(path))


MATMUL = """import torch
import torch.nn as nn
N = {n}
M = {m}


class Model(nn.Module):
    def forward(self, a, b):
        return a @ b


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, M)]


def get_init_inputs():
    return []
"""
NOT_ON_META = MATMUL.replace("return a @ b", "return a * float(a.sum().item())")


def test_kinds_keep_memory_bound_tasks_by_flops_per_byte(tmp_path):
    (tmp_path / "1_Square_matmul.py").write_text(MATMUL.format(n=1024, m=1024))  # ~170 FLOP/byte
    (tmp_path / "2_Matvec.py").write_text(MATMUL.format(n=1024, m=1))  # ~0.5 FLOP/byte
    (tmp_path / "3_Item.py").write_text(NOT_ON_META.format(n=8, m=8))  # .item() cannot run on meta
    shutil.copyfile(SUITE_DIR / "gelu.py", tmp_path / "4_gelu.py")  # no FLOPs PyTorch counts
    names = lambda kinds: [c.name for c in suite_cases(str(tmp_path), kinds=kinds)]  # noqa: E731
    assert names(["memory-bound"]) == ["2_Matvec", "4_gelu"]
    assert names(["compute-bound"]) == ["1_Square_matmul"]
    assert names(["unknown", "compute-bound"]) == ["1_Square_matmul", "3_Item"]
    with pytest.raises(UsageError, match="not a kind"):
        suite_cases(str(tmp_path), kinds=["memory"])
    with pytest.raises(UsageError, match="matching --only and --kinds"):
        suite_cases(str(tmp_path), ["1"], kinds=["memory-bound"])
