"""The README's walk-through runs as written, on a CPU, so it cannot go stale."""

import os
import shlex
import shutil
import subprocess
import sys

from conftest import ROOT


def walkthrough_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- walkthrough -->", 1)[1].split("<!-- /walkthrough -->", 1)[0]
    lines = block.split("```bash", 1)[1].split("```", 1)[0].splitlines()
    return [line.split("  #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_walkthrough_is_the_five_steps_in_order():
    verbs = [shlex.split(c)[1] for c in walkthrough_commands()]
    assert verbs == ["tasks", "verify", "bench", "optimize", "package", "e2e"]


def test_every_walkthrough_command_runs_as_written_on_a_cpu():
    shutil.rmtree(ROOT / "runs" / "walkthrough", ignore_errors=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "120"}
    try:
        for command in walkthrough_commands():
            args = shlex.split(command)
            assert args[0] == "kernelwright"
            done = subprocess.run([sys.executable, "-m", "kernelwright", *args[1:]], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert (ROOT / "runs" / "walkthrough" / "rmsnorm" / "best.py").is_file()
        assert (ROOT / "runs" / "walkthrough" / "rmsnorm-kw" / "CARD.md").is_file()
        assert (ROOT / "runs" / "walkthrough" / "e2e" / "e2e.json").is_file()
    finally:
        shutil.rmtree(ROOT / "runs" / "walkthrough", ignore_errors=True)
