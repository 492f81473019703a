"""``cmd:TEMPLATE``: an external coding agent run in a scratch workspace; we judge what it leaves.

The workspace holds the task as ``task.py`` (and, when asked, a bundled skill in the folders where
claude, codex and opencode look). ``{prompt}``, ``{task}`` and ``{workspace}`` in the template are
replaced (shell-quoted); the command runs there with a timeout. Its ``candidate.py`` (or ``kernel.py``) is
verified, and benchmarked on a GPU, by kernelwright: the agent's own claims count for nothing. Token
and tool-call counts come from the agent's JSON stdout when it prints them, else they stay unknown.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from kernelwright import skills
from kernelwright.bench.bencher import bench
from kernelwright.sandbox.runner import Limits
from kernelwright.verify import verify

from kernelwright.evals.metrics import bench_speedups, roofline_pct

CANDIDATES = ("candidate.py", "kernel.py")
SKILL_DIRS = (".claude/skills", ".agents/skills", ".opencode/skills")
PROMPT = ("task.py is a PyTorch operator (class Model, get_inputs, get_init_inputs). Write candidate.py in this "
          "folder defining class ModelNew with the same constructor and forward, computing the same function with "
          "a faster Triton or CUDA kernel. It will be verified on many shapes and inputs and then benchmarked.")
# after an eval file's own prompt: where the task is and where the answer must be left for us to judge it
WHERE = ("The operator is task.py in this folder (class Model). Leave your answer as candidate.py here, defining class "
         "ModelNew with the same constructor and forward; kernelwright verifies and benchmarks it.")


def prompt_for(case_prompt: str | None) -> str:
    return f"{case_prompt.strip()}\n\n{WHERE}" if case_prompt else PROMPT


def prepare(workspace: Path, task: Path, skill: str | None, files: tuple[Path, ...] = ()) -> None:
    if workspace.exists():  # a rerun of an unfinished unit starts from a clean folder
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    shutil.copyfile(task, workspace / "task.py")
    for extra in files:  # an eval file's other fixtures, beside the task
        shutil.copyfile(extra, workspace / extra.name)
    if skill:
        for folder in SKILL_DIRS:
            skills.add([], dest=workspace / folder, skills=[skill])


def command_line(template: str, workspace: Path, prompt: str = PROMPT) -> str:
    return (template.replace("{prompt}", shlex.quote(prompt))
            .replace("{task}", shlex.quote(str(workspace / "task.py")))
            .replace("{workspace}", shlex.quote(str(workspace))))


def usage_from(stdout: str) -> dict[str, Any]:
    """Tokens, dollars and tool calls from the agent's JSON output (the last JSON object it printed)."""
    found: dict[str, Any] = {"tokens_in": None, "tokens_out": None, "dollars": None, "tool_calls": None,
                             "llm_calls": None}
    data = None
    for line in [stdout, *reversed(stdout.strip().splitlines())]:
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict):
            data = candidate
            break
    if data is None:
        return found
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else data
    found["tokens_in"] = usage.get("input_tokens")
    found["tokens_out"] = usage.get("output_tokens")
    found["dollars"] = data.get("total_cost_usd", data.get("cost_usd"))
    found["tool_calls"] = data.get("tool_calls", data.get("num_tool_calls"))
    found["llm_calls"] = data.get("num_turns")
    return found


def run_cmd_agent(template: str, task: Path, workspace: Path, *, skill: str | None, device: str,
                  timeout_s: float, prompt: str | None = None, files: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Run the agent, then verify (and on a GPU bench) its candidate; the unit's numbers."""
    started = time.monotonic()
    prepare(workspace, task, skill, files)
    line = command_line(template, workspace, prompt_for(prompt))
    # its own session: at the timeout the whole group dies, not only the shell (an agent left running would
    # spend tokens and edit the workspace while its candidate is verified)
    agent = subprocess.Popen(line, shell=True, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        stdout, _ = agent.communicate(timeout=timeout_s)
        note = f"agent exited {agent.returncode}"
    except subprocess.TimeoutExpired:
        _kill_group(agent.pid)
        stdout, _ = agent.communicate()
        note = f"agent stopped at its {timeout_s:.0f} s timeout"
    finally:
        _kill_group(agent.pid)  # what it left in the background
    (workspace / "agent.stdout").write_text(stdout)
    unit: dict[str, Any] = {**usage_from(stdout), "repairs": None, "correct": False, "speedup_eager": None,
                            "speedup_compile": None, "roofline_pct": None, "timings_meaningful": False}
    unit["tokens"] = (unit["tokens_in"] + unit["tokens_out"]
                      if unit["tokens_in"] is not None and unit["tokens_out"] is not None else None)
    candidate = next((workspace / n for n in CANDIDATES if (workspace / n).is_file()), None)
    if candidate is None:
        unit["note"] = f"{note}; it left no {' or '.join(CANDIDATES)}"
    else:
        unit.update(judge_candidate(task, candidate, device=device, timeout_s=timeout_s))
        unit["note"] = f"{note}; {unit['note']}"
    unit["wall_s"] = time.monotonic() - started
    return unit


def judge_candidate(task: Path, candidate: Path, *, device: str, timeout_s: float) -> dict[str, Any]:
    limits = Limits(timeout_s=max(60.0, timeout_s))
    checked = verify(task, candidate, device=device, limits=limits)
    if not checked.accepted:
        first = checked.failures[0] if checked.failures else {}
        return {"correct": False, "note": f"rejected: {first.get('check', '?')}: {first.get('message', '')}"[:300]}
    if not device.startswith("cuda"):
        return {"correct": True, "note": "verified; untimed on CPU (interpreter timings mean nothing)"}
    timed = bench(task, candidate, device=device, limits=limits, baseline_kinds="eager,compile")
    recheck = [f for f in timed.failures if str(f.get("check", "")).startswith("recheck_")]
    if recheck:
        return {"correct": False, "note": f"benchmark recheck failed: {recheck[0].get('check')}"}
    if timed.failures:  # a timeout or the host's memory limit: no verdict on the kernel, which stays verified
        return {"correct": True, "note": f"verified; not timed: the benchmark failed ({timed.failures[0].get('check')})"}
    return {"correct": True, "timings_meaningful": True, **{f"speedup_{k}": v for k, v in
            bench_speedups(timed.rows).items()}, "roofline_pct": roofline_pct(timed.rows), "note": "verified and timed"}


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
