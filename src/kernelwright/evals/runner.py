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
from kernelwright.errors import KernelwrightError, UsageError
from kernelwright.hardware import resolve_device
from kernelwright.run import entry
from kernelwright.run.artifacts import atomic_write
from kernelwright.tasks.task import load_task

from kernelwright.evals.external import run_cmd_agent
from kernelwright.executor import make_executor
from kernelwright.executor.claims import UnitStore
from kernelwright.executor.eval_units import run_units
from kernelwright.evals.metrics import aggregates, bench_speedups, roofline_pct, skill_lifts
from kernelwright.evals.suites import Case, suite_cases

SCHEMA = "kernelwright.eval/1"
NO_SKILL = "none"
BUILTIN = "builtin"  # offline and the LLM team take no installed skill: the team reads the bundled texts itself
DEFAULT_CMD_MINUTES = 30.0
COLUMNS = ("agent", "skill", "task", "run", "correct", "timings_meaningful", "speedup_eager", "speedup_compile",
           "roofline_pct", "tokens_in", "tokens_out", "tokens", "dollars", "llm_calls", "repairs", "tool_calls",
           "wall_s", "status", "note", "out")
DONE, SKIPPED_BUDGET = "done", "skipped-for-budget"


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


def check_providers(agents: list[str]) -> None:
    """Build each LLM agent's provider once, before any unit: a missing key or extra, an endpoint that is down
    or an unknown model is the user's to fix, not a verdict to store against every one of that agent's units."""
    from kernelwright.agents.llm import AgentSpec, make_provider

    for agent in dict.fromkeys(agents):
        if agent.startswith("cmd:") or agent == "offline":
            continue
        make_provider(AgentSpec.parse(agent))


def slug(agent: str) -> str:
    plain = re.sub(r"[^A-Za-z0-9]+", "-", agent).strip("-")[:40]
    return f"{plain}-{hashlib.sha1(agent.encode()).hexdigest()[:8]}"


def unit_plan(agents: list[str], skills: list[str], cases: list[Case], runs: int) -> list[dict[str, Any]]:
    plan = []
    for agent in agents:
        for skill in (skills if agent.startswith("cmd:") else [BUILTIN]):
            for case in cases:
                for run in range(1, runs + 1):
                    key = f"{slug(agent)}--{skill}--{case.name}--r{run}"
                    plan.append({"agent": agent, "skill": skill, "task": case.name, "path": case.path, "run": run,
                                 "key": key, "case": case})
    return plan


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
    try:
        result = entry.optimize(unit["path"], agent=unit["agent"], out=out, device=device, minutes=minutes)
    except KernelwrightError as exc:  # an op the agent does not cover, a task too big for the GPU: this unit's
        return {"correct": False, "timings_meaningful": False, "speedup_eager": None, "speedup_compile": None,
                "roofline_pct": None, "note": str(exc), "wall_s": time.monotonic() - started}  # verdict, not the eval's
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
        # the team's models are sent plain completions with no tools, so their tool calls are zero, not unknown
        found.update(llm_counts(Path(result.out)), tokens=totals.get("tokens"), llm_calls=totals.get("calls"),
                     dollars=None if totals.get("calls_without_price") else totals.get("dollars"), tool_calls=0)
    found["wall_s"] = time.monotonic() - started
    return found


def run_unit(unit: dict[str, Any], out: Path, *, device: str, minutes: float | None,
             work: Path | None = None) -> dict[str, Any]:
    work = work or out / "runs" / unit["key"]  # an executor's worker passes its own folder
    if unit["agent"].startswith("cmd:"):
        timeout = 60 * (minutes if minutes else DEFAULT_CMD_MINUTES)
        case = unit["case"]
        found = run_cmd_agent(unit["agent"][4:], unit["path"], work, skill=None if unit["skill"] == NO_SKILL
                              else unit["skill"], device=device, timeout_s=timeout, prompt=case.prompt,
                              files=case.files)
    else:
        found = run_optimize_unit(unit, work, device=device, minutes=minutes)
    record = {k: unit[k] for k in ("agent", "skill", "task", "run")}
    return {**record, **found, "status": DONE, "task_path": str(unit["path"]), "out": str(work)}


def environment(device: str) -> dict[str, Any]:
    import torch
    import triton

    from kernelwright import __version__

    return {"device": device, "kernelwright": __version__, "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "timings_meaningful": device.startswith("cuda")}


def run_eval(suite: str, agents: list[str], *, skills: list[str] | None = None, runs: int = 1,
             out: str | Path = "kernelwright-evals", device: str = "auto", minutes: float | None = None,
             only: list[str] | None = None, kinds: list[str] | None = None, max_dollars: float | None = None,
             report: Callable[[str], None] = lambda _: None, executor: str = "local", gpus: str | None = None,
             workers: int | None = None) -> dict[str, Any]:
    """Run every unit not already stored under ``out``; write results.csv, results.json and report.html;
    return the results. Once the recorded dollars reach ``max_dollars`` no further unit starts: the rest
    are listed as skipped-for-budget (not failures, not stored: a rerun with a larger budget runs them)."""
    if runs < 1:
        raise UsageError(f"--runs must be at least 1, not {runs}.")
    if max_dollars is not None and max_dollars < 0:
        raise UsageError(f"--max-dollars must be zero or more, not {max_dollars}.")
    check_agents(agents)
    chosen = check_skills(skills or [])
    cases = suite_cases(suite, only, kinds)
    for case in cases:
        load_task(case.path)  # a broken task file is a usage error before any unit runs
    device = resolve_device(device)
    out = Path(out)
    plan = unit_plan(agents, chosen, cases, runs)
    stored = UnitStore(out / "units")
    check_providers([u["agent"] for u in plan if not stored.has(u["key"])])  # a finished eval reruns offline
    # units run concurrently on the executor's slots, each claimed and stored once (executor/eval_units.py)
    pool = make_executor(executor, device=device, gpus=gpus, workers=workers)
    units = run_units(plan, out, pool, device=device, minutes=minutes, max_dollars=max_dollars, report=report)
    return write_results(out, suite, agents, chosen, runs, max_dollars, device, cases, units)


def recorded_dollars(units: list[dict[str, Any]]) -> float:
    # a unit whose cost is unknown (an agent that printed none) adds nothing: the budget counts what is recorded
    return sum(u.get("dollars") or 0.0 for u in units)


def skipped_for_budget(unit: dict[str, Any], spent: float, max_dollars: float) -> dict[str, Any]:
    return {**{k: unit[k] for k in ("agent", "skill", "task", "run")}, "status": SKIPPED_BUDGET, "correct": None,
            "task_path": str(unit["path"]), "resumed": False,
            "note": f"not started: ${spent:.4f} recorded of the --max-dollars {max_dollars:g} budget"}


def write_results(out: Path, suite: str, agents: list[str], skills: list[str], runs: int, max_dollars: float | None,
                  device: str, cases: list[Case], units: list[dict[str, Any]]) -> dict[str, Any]:
    from kernelwright.evals.plots import write_pngs
    from kernelwright.evals.report import write_report

    done = [u for u in units if u["status"] == DONE]
    results = {"schema": SCHEMA, "suite": suite, "agents": agents, "skills": skills, "runs": runs,
               "max_dollars": max_dollars, "environment": environment(device),
               "cases": [case_record(c) for c in cases if c.prompt is not None], "units": units,
               "aggregates": aggregates(done), "lifts": skill_lifts(done)}
    atomic_write(out / "results.json", json.dumps(results, indent=2, default=str))
    write_csv(out / "results.csv", units)
    write_report(out)
    write_pngs(results, out)
    return results


def case_record(case: Case) -> dict[str, Any]:
    return {"name": case.name, "task_path": str(case.path), "prompt": case.prompt,
            "files": [str(f) for f in case.files], "expected_output": case.expected_output,
            "assertions": list(case.assertions)}


def write_csv(path: Path, units: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for unit in units:
            writer.writerow({k: ("" if unit.get(k) is None else unit.get(k)) for k in COLUMNS})
    os.replace(tmp, path)
