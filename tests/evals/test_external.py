import json
import shutil
import sys
from pathlib import Path

from kernelwright.evals import run_eval
from kernelwright.evals.external import usage_from
from kernelwright.tasks.task import SUITE_DIR

ROOT = Path(__file__).resolve().parents[2]
CHEAT = ROOT / "tests" / "corpus" / "cheat_cache_by_pointer.py"  # task gelu: caches by the input's pointer
EXAMPLE = ROOT / "examples" / "gelu.py"
STUB = """import json, pathlib, shutil, sys
ws = pathlib.Path(sys.argv[1])
assert (ws / "task.py").is_file()
(ws / "saw_skill").write_text(str((ws / ".claude/skills/triton-kernels/SKILL.md").is_file()))
shutil.copyfile(sys.argv[2], ws / "candidate.py")
print("working...")
print(json.dumps({"usage": {"input_tokens": 120, "output_tokens": 30}, "num_turns": 3, "total_cost_usd": 0.01}))
"""


def eval_with_stub(tmp_path, source: Path, skill: str):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copyfile(SUITE_DIR / "gelu.py", suite / "gelu.py")
    stub = tmp_path / "agent.py"
    stub.write_text(STUB)
    agent = f"cmd:{sys.executable} {stub} {{workspace}} {source}"
    results = run_eval(str(suite), [agent], skills=[skill], out=tmp_path / "out", device="cpu", minutes=2)
    (unit,) = results["units"]
    return unit


def test_a_cmd_agent_that_leaves_a_cheating_candidate_is_scored_incorrect_with_its_skill_installed(tmp_path):
    unit = eval_with_stub(tmp_path, CHEAT, "triton-kernels")
    assert unit["correct"] is False and "rejected" in unit["note"]
    assert unit["skill"] == "triton-kernels"
    assert (Path(unit["out"]) / "saw_skill").read_text() == "True"
    assert (unit["tokens_in"], unit["tokens_out"], unit["tokens"], unit["llm_calls"]) == (120, 30, 150, 3)
    assert unit["tool_calls"] is None  # it printed none: unknown, not zero


def test_a_cmd_agent_that_leaves_the_example_kernel_is_scored_correct_without_a_skill(tmp_path):
    unit = eval_with_stub(tmp_path, EXAMPLE, "none")
    assert unit["correct"] is True, unit["note"]
    assert unit["speedup_eager"] is None  # CPU: untimed
    assert (Path(unit["out"]) / "saw_skill").read_text() == "False"
    stored = json.loads(next((tmp_path / "out" / "units").glob("*.json")).read_text())
    assert stored["correct"] is True


def test_usage_is_unknown_when_the_agent_prints_no_json():
    assert usage_from("done, wrote candidate.py\n")["tokens_in"] is None
    assert usage_from('{"input_tokens": 5, "output_tokens": 2}')["tokens_out"] == 2


def test_an_agent_past_its_timeout_dies_with_everything_it_started(tmp_path):
    import os
    import time

    from kernelwright.evals.external import run_cmd_agent
    from kernelwright.tasks.task import SUITE_DIR

    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    unit = run_cmd_agent(f"sh -c 'sleep 60 & echo $! > {pid_file}; wait'", SUITE_DIR / "gelu.py", tmp_path / "ws",
                         skill=None, device="cpu", timeout_s=2, prompt=None)
    assert time.monotonic() - started < 30
    assert "timeout" in unit["note"]
    child = int(pid_file.read_text())
    time.sleep(0.5)
    try:
        os.kill(child, 0)
        state = open(f"/proc/{child}/stat").read().split()[2]  # a zombie waiting for init to reap it is dead too
        assert state == "Z", f"the agent's background child {child} is still running"
    except ProcessLookupError:
        pass
