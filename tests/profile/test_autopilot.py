"""autopilot: which targets ship, Amdahl's prediction, and one whole run on the CPU (correctness only) that
resumes without redoing anything."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from kernelwright.errors import UsageError
from kernelwright.profile.autopilot import _amdahl, _package, _with_share, autopilot


def test_a_kernel_that_loses_or_does_not_verify_is_left_out_with_the_reason(tmp_path):
    slower = {"optimize": {"accepted": True, "status": "slower", "sentence": "verified but 1.30x slower than eager"}}
    _package(slower, tmp_path / "t.py", device="cpu", out=tmp_path, say=print)
    assert slower["decision"] == "left out" and "1.30x slower" in slower["why"]
    rejected = {"optimize": {"accepted": False, "status": "none"}}
    _package(rejected, tmp_path / "t.py", device="cpu", out=tmp_path, say=print)
    assert rejected["decision"] == "left out" and rejected["why"] == "no verified kernel"
    assert not (tmp_path / "kernels").exists()


def test_a_modeling_function_s_kernel_is_packaged_but_not_kernelized_and_keeps_its_share(tmp_path, monkeypatch):
    import kernelwright.package as package

    monkeypatch.setattr(package, "package", lambda *a, **k: SimpleNamespace(layer=None))  # functions only
    task = tmp_path / "apply_rotary_pos_emb.py"
    task.write_text("DESCRIPTION = 'a function: no REPLACES'\n")
    entry = {"task": str(task), "optimize": {"accepted": True, "status": "faster", "run": str(tmp_path)}}
    _package(entry, task, device="cpu", out=tmp_path, say=print)
    assert entry["decision"] == "packaged, not kernelized" and "no layer" in entry["why"]
    profile = {"targets": [{"module_class": "Qwen3RMSNorm", "share": 0.2},
                           {"module_class": "apply_rotary_pos_emb()", "share": 0.086}]}
    target = _with_share(entry, profile)
    assert (target["module_class"], target["share"]) == ("apply_rotary_pos_emb()", 0.086)
    assert _amdahl([target]) is None  # nothing swapped into the model: no end-to-end prediction


def test_amdahl_combines_the_shipped_targets_only():
    targets = [{"decision": "shipped", "share": 0.2, "optimize": {"speedup_vs_eager": 2.0}},
               {"decision": "shipped", "share": 0.1, "optimize": {"speedup_vs_eager": 4.0}},
               {"decision": "left out", "share": 0.3, "optimize": {"speedup_vs_eager": None}}]
    assert _amdahl(targets) == pytest.approx(1 / (0.7 + 0.1 + 0.025))
    assert _amdahl(targets[2:]) is None


def test_bad_inputs_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--top"):
        autopilot(top=0, device="cpu", out=tmp_path)
    with pytest.raises(UsageError, match="Unknown model"):
        autopilot("gpt-5", device="cpu", out=tmp_path)


def test_the_small_qwen3_runs_end_to_end_on_the_cpu_and_resumes(tmp_path):
    out = tmp_path / "ap"
    args = [sys.executable, "-m", "kernelwright", "autopilot", "qwen3", "--device", "cpu", "--top", "1",
            "--layers", "1", "--seq", "16", "--max-minutes", "2", "--only", "Qwen3RMSNorm", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    result = json.loads((out / "autopilot.json").read_text())
    (target,) = result["targets"]
    assert target["module_class"] == "Qwen3RMSNorm" and target["decision"] == "shipped"
    assert result["e2e"]["logits"]["passed"] and result["e2e"]["kernel_calls"] == {"qwen3-rms-norm-kw": 5}  # 4 in the layer, 1 final
    assert result["e2e"]["measured_speedup"] is None  # CPU: correctness only, no speedup claimed
    diff = {(d["module_class"], d["op"]): d for d in result["e2e"]["profile_diff"]}  # eager vs kernelized profile
    assert diff[("Qwen3RMSNorm", "aten::pow")]["after_ms"] is None
    kernel_ops = [d for (cls, op), d in diff.items() if cls == "Qwen3RMSNorm" and op.endswith("::qwen3_rms_norm")]
    assert len(kernel_ops) == 1 and kernel_ops[0]["before_ms"] is None and kernel_ops[0]["after_calls"] == 5
    assert "correctness only" in (out / "autopilot.md").read_text()
    page = (out / "autopilot.html").read_text()  # the one-page HTML report, with the target's optimize run
    assert 'id="targets"' in page and 'id="e2e"' in page and "<summary>qwen3_rms_norm</summary>" in page
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "reusing" in again.stderr and "optimize qwen3_rms_norm" not in again.stderr


def test_targets_are_optimized_as_executor_units_and_only_an_unfinished_one_is_redone(tmp_path, monkeypatch):
    from kernelwright.executor import INFRASTRUCTURE, Finished
    from kernelwright.profile import autopilot as module

    tasks = [tmp_path / "tasks" / f"{name}.py" for name in ("a_norm", "b_act", "c_rope")]
    calls = []

    def fake_optimize(out, *, task, agent, minutes, device):
        calls.append((task.rsplit("/", 1)[1], minutes, device))
        if task.endswith("b_act.py"):
            raise RuntimeError("Task b_act needs 60.0 GB of GPU memory at its own shape")
        return {"optimize": {"accepted": True, "run": out, "status": "faster", "sentence": "faster"}}

    monkeypatch.setattr(module, "optimize_target", fake_optimize)
    state = {t.stem: {"task": str(t)} for t in tasks}
    notes = module._optimize_all(state, tasks, agent="offline", minutes=6.0, device="cpu", out=tmp_path,
                                 executor="local", gpus=None, workers=None, say=print)
    # one CPU slot: three waves of one target, a third of the budget each
    assert calls == [("a_norm.py", 2.0, "cpu"), ("b_act.py", 2.0, "cpu"), ("c_rope.py", 2.0, "cpu")]
    assert state["a_norm"]["optimize"]["status"] == "faster" and notes == []
    # kernelwright's own error would end the same way again: a decision, not a retry
    assert state["b_act"]["decision"] == "left out" and "needs 60.0 GB" in state["b_act"]["why"]

    import kernelwright.executor as executor_module

    def dead_worker(pool, works, store, report):  # c_rope's worker process died: nothing stored
        return {w.key: Finished(w.key, None, INFRASTRUCTURE, "worker killed by signal 9") for w in works}

    fresh = {t.stem: {"task": str(t)} for t in tasks}
    fresh["b_act"] = dict(state["b_act"])  # as autopilot's state.json keeps it
    monkeypatch.setattr(executor_module, "execute", dead_worker)
    (tmp_path / "units" / "c_rope.json").unlink()
    notes = module._optimize_all(fresh, tasks, agent="offline", minutes=6.0, device="cpu", out=tmp_path,
                                 executor="local", gpus=None, workers=None, say=print)
    assert "optimize" not in fresh["c_rope"] and "decision" not in fresh["c_rope"]
    assert notes == ["optimize of c_rope did not finish (infrastructure failure: worker killed by signal 9); "
                     "run the same command again to redo it."]
    assert fresh["a_norm"]["optimize"]["status"] == "faster"  # read from the store, not run again
    module._package(fresh["c_rope"], tasks[2], device="cpu", out=tmp_path, say=print)
    assert "decision" not in fresh["c_rope"]  # no verdict on a target whose run did not finish
