"""e2e without --kernel on a CPU: no third-party noise on the terminal, and labels that say what ran."""

import json
import subprocess
import sys


def test_e2e_without_kernel_is_quiet_and_does_not_blame_the_interpreter(tmp_path):
    out = tmp_path / "e2e"
    run = subprocess.run([sys.executable, "-m", "kernelwright", "e2e", "--device", "cpu", "--layers", "1", "--reps",
                          "1", "--tokens", "8", "--no-compile", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = run.stdout + run.stderr
    assert "USDT" not in text and "FutureWarning" not in text and "past_key_values" not in text
    assert "interpreter" not in text.lower()
    assert "no Triton kernel ran" in text and "nothing was kernelized (eager only)" in text
    result = json.loads((out / "e2e.json").read_text())
    assert result["timings_meaningful"] is False and result["rows"]  # still measured, still not a GPU number
