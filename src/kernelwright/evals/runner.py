"""The eval loop: every (agent, skill, task, run) unit once, stored as it finishes, skipped on a rerun."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from kernelwright import skills as bundled_skills
from kernelwright.errors import UsageError
from kernelwright.hardware import resolve_device
from kernelwright.run import entry
from kernelwright.tasks.task import load_task

from kernelwright.evals.external import run_cmd_agent
from kernelwright.evals.metrics import aggregates, bench_speedups, roofline_pct
from kernelwright.evals.suites import suite_tasks

SCHEMA = "kernelwright.eval/1"
NO_SKILL = "none"
BUILTIN = "builtin"  # offline and the LLM team take no installed skill: the team reads the bundled texts itself
DEFAULT_CMD_MINUTES = 30.0
COLUMNS = ("agent", "skill", "task", "run", "correct", "timings_meaningful", "speedup_eager", "speedup_compile",
           "roofline_pct", "tokens_in", "tokens_out", "tokens", "dollars", "llm_calls", "repairs", "tool_calls",
           "wall_s", "note", "out")


def check_agents(agents: list[str]) -> None:
    if not agents:
        raise UsageError("name at least one agent with --agent (offline, an LLM agent, or 'cmd:TEMPLATE').")
    for agent in agents:
        if agent.startswith("cmd:"):
            if not agent[4:].strip():
                raise UsageError("a cmd: agent needs a command after 'cmd:', e.g. 'cmd:claude -p {prompt}'.")
        else:
            entry.check_agent(agent)


def check_skills(names: list[str]) -> list[str]:
    chosen = list(dict.fromkeys(names or [NO_SKILL]))
    known = bundled_skills.bundled_names()
    unknown = [s for s in chosen if s != NO_SKILL and s not in known]
    if unknown:
        raise UsageError(f"no bundled skill named {', '.join(unknown)}: choose from {', '.join(known)} or none.")
    return chosen


def slug(agent: str) -> str:
    plain = re.sub(r"[^A-Za-z0-9]+", "-", agent).strip("-")[:40]
    return f"{plain}-{hashlib.sha1(agent.encode()).hexdigest()[:8]}"


def unit_plan(agents: list[str], skills: list[str], tasks: list[Path], runs: int) -> list[dict[str, Any]]:
    plan = []
    for agent in agents:
        for skill in (skills if agent.startswith("cmd:") else [BUILTIN]):
            for task in tasks:
                for run in range(1, runs + 1):
                    key = f"{slug(agent)}--{skill}--{task.stem}--r{run}"
                    plan.append({"agent": agent, "skill": skill, "task": task.stem, "path": task, "run": run,
                                 "key": key})
    return plan


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def llm_counts(run_dir: Path) -> dict[str, Any]:
    """Input and output tokens and repair calls of an LLM team run, read from its run store."""
    path = run_dir / "run.sqlite"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tin, tout, repairs = con.execute(
                "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
                "COALESCE(SUM(role = 'debugger'), 0) FROM llm_calls").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return {"tokens_in": None, "tokens_out": None, "repairs": None}
    return {"tokens_in": tin, "tokens_out": tout, "repairs": repairs}


def run_optimize_unit(unit: dict[str, Any], out: Path, *, device: str, minutes: float | None) -> dict[str, Any]:
    started = time.monotonic()
    result = entry.optimize(unit["path"], agent=unit["agent"], out=out, device=device, minutes=minutes)
    bench = result.bench or {}
    timed = (result.accepted and device.startswith("cuda") and bench.get("timings_meaningful", True)
             and not bench.get("failures") and bool(result.final_rows))
    speeds = bench_speedups(result.final_rows) if timed else {"eager": None, "compile": None}
    found: dict[str, Any] = {"correct": bool(result.accepted), "timings_meaningful": timed,
                             "speedup_eager": speeds["eager"], "speedup_compile": speeds["compile"],
                             "roofline_pct": roofline_pct(result.final_rows) if timed else None,
                             "note": result.verdict.get("sentence") or result.message}
    if unit["agent"] == "offline":  # no model, no tools: its costs are zero, not unknown
        found.update(tokens_in=0, tokens_out=0, tokens=0, dollars=0.0, llm_calls=0, repairs=0, tool_calls=0)
    else:
        totals = result.session.get("totals") or {}
        found.update(llm_counts(Path(result.out)), tokens=totals.get("tokens"), llm_calls=totals.get("calls"),
                     dollars=None if totals.get("calls_without_price") else totals.get("dollars"), tool_calls=None)
    found["wall_s"] = time.monotonic() - started
    return found


def run_unit(unit: dict[str, Any], out: Path, *, device: str, minutes: float | None) -> dict[str, Any]:
    work = out / "runs" / unit["key"]
    if unit["agent"].startswith("cmd:"):
        timeout = 60 * (minutes if minutes else DEFAULT_CMD_MINUTES)
        found = run_cmd_agent(unit["agent"][4:], unit["path"], work, skill=None if unit["skill"] == NO_SKILL
                              else unit["skill"], device=device, timeout_s=timeout)
    else:
        found = run_optimize_unit(unit, work, device=device, minutes=minutes)
    record = {k: unit[k] for k in ("agent", "skill", "task", "run")}
    return {**record, **found, "task_path": str(unit["path"]), "out": str(work)}


def environment(device: str) -> dict[str, Any]:
    import torch
    import triton

    from kernelwright import __version__

    return {"device": device, "kernelwright": __version__, "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "timings_meaningful": device.startswith("cuda")}


def run_eval(suite: str, agents: list[str], *, skills: list[str] | None = None, runs: int = 1,
             out: str | Path = "kernelwright-evals", device: str = "auto", minutes: float | None = None,
             only: list[str] | None = None, report: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every unit not already stored under ``out``; write results.csv and results.json; return the latter."""
    if runs < 1:
        raise UsageError(f"--runs must be at least 1, not {runs}.")
    check_agents(agents)
    chosen = check_skills(skills or [])
    tasks = suite_tasks(suite, only)
    for task in tasks:
        load_task(task)  # a broken task file is a usage error before any unit runs
    device = resolve_device(device)
    out = Path(out)
    (out / "units").mkdir(parents=True, exist_ok=True)
    units = []
    plan = unit_plan(agents, chosen, tasks, runs)
    for i, unit in enumerate(plan, 1):
        stored = out / "units" / f"{unit['key']}.json"
        if stored.is_file():
            units.append({**json.loads(stored.read_text()), "resumed": True})
            report(f"[{i}/{len(plan)}] {unit['key']}: stored, skipped")
            continue
        report(f"[{i}/{len(plan)}] {unit['key']}: running")
        result = run_unit(unit, out, device=device, minutes=minutes)
        write_atomic(stored, json.dumps(result, indent=2, default=str))
        units.append({**result, "resumed": False})
    results = {"schema": SCHEMA, "suite": suite, "agents": agents, "skills": chosen, "runs": runs,
               "environment": environment(device), "units": units, "aggregates": aggregates(units)}
    write_atomic(out / "results.json", json.dumps(results, indent=2, default=str))
    write_csv(out / "results.csv", units)
    return results


def write_csv(path: Path, units: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for unit in units:
            writer.writerow({k: ("" if unit.get(k) is None else unit.get(k)) for k in COLUMNS})
    os.replace(tmp, path)
