"""CARD.md's tables say what was run, once."""

from kernelwright.package.card import _verification_rows


def _verification(seed_cases: int, device="NVIDIA H200", accepted=True):
    cases = [{"dtype": "bfloat16", "knobs": {"tokens": t, "hidden": 64}} for t in range(1, seed_cases + 1)]
    return {"accepted": accepted, "cases": cases,
            "environment": {"device_name": device, "compute_capability": "9.0", "interpreter": False}}


def test_the_same_kernel_verified_twice_is_one_row_with_both_counts():
    rows = _verification_rows([_verification(3), _verification(3)])
    assert rows == ["| NVIDIA H200 | sm_90 | bfloat16 | tokens 1–3, hidden 64–64 | 3 + 3 (2 runs) | accepted |"]


def test_different_devices_or_verdicts_stay_apart():
    rows = _verification_rows([_verification(2), _verification(2, device="NVIDIA H100 80GB HBM3"),
                               _verification(2, accepted=False)])
    assert len(rows) == 3 and rows[0].endswith("| 2 | accepted |") and rows[2].endswith("| REJECTED |")


def test_example_tensors_take_the_example_shapes_and_dtype_and_scalars_are_literals():
    from kernelwright.package.card import _tensors

    example = {"dtype": "float16", "inputs": {"x": [4, 64]}, "attrs": {"weight": {"shape": [64]}, "eps": {"value": 1e-5}},
               "init": [64, 1e-5]}
    assert _tensors(example, ["x", "weight", "eps"]) == [
        "x = torch.randn((4, 64), dtype=torch.float16, device=device)",
        "weight = torch.randn((64,), dtype=torch.float16, device=device)",
        "eps = 1e-05"]


def test_every_python_snippet_of_a_packaged_card_runs_as_written_on_a_cpu(tmp_path):
    """Each ```python block of CARD.md in a child process, from the repository's folder, as a user would run it:
    TRITON_INTERPRET is left unset because the snippet itself switches the interpreter on without a GPU."""
    import os
    import re
    import subprocess
    import sys

    import pytest

    pytest.importorskip("kernels")
    pytest.importorskip("transformers")
    from conftest import EXAMPLES, ROOT
    from kernelwright.package import package

    repo = package(EXAMPLES / "rmsnorm.py", name="rmsnorm-kw", out=tmp_path / "rmsnorm-kw", device="cpu").path
    snippets = re.findall(r"```python\n(.*?)```", (repo / "CARD.md").read_text(), re.S)
    assert len(snippets) == 2
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT / "src")
    outputs = []
    for snippet in snippets:
        run = subprocess.run([sys.executable, "-c", snippet], cwd=repo, env=env, capture_output=True, text=True,
                             timeout=240)
        assert run.returncode == 0, snippet + run.stdout[-2000:] + run.stderr[-3000:]
        outputs.append(run.stdout)
    assert "torch.Size([8, 5120]) torch.bfloat16" in outputs[0]  # the smallest benchmark shape, rows capped
    difference = float(outputs[1].rsplit(":", 1)[1])
    assert difference < 0.1  # bfloat16 rounding of outputs of a few units, not a wrong result
