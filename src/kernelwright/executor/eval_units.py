"""An eval's units as executor works: ``kernelwright eval --executor ... --gpus ... --workers ...``.

Each unit (agent, skill, task, run) is one ``Work`` whose call is ``run_unit_at``: it rebuilds the
unit from JSON in whatever process or node runs it, and runs it with ``evals.runner.run_unit`` into
its folder (``OUT/runs/<key>``). Results land in ``OUT/units/<key>.json`` as before; a unit that could
not finish (a dead worker or node, an error in kernelwright) is listed with that status, not stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from kernelwright.executor.base import Executor, Finished, Work
from kernelwright.executor.claims import UnitStore
from kernelwright.executor.schedule import execute

UNIT_FIELDS = ("agent", "skill", "task", "run", "key")


def unit_work(unit: dict[str, Any], out: Path, *, device: str, minutes: float | None) -> Work:
    case = unit["case"]
    kwargs = {"unit": {k: unit[k] for k in UNIT_FIELDS},
              "case": {"name": case.name, "prompt": case.prompt, "assertions": list(case.assertions),
                       "expected_output": case.expected_output},
              "task": str(unit["path"]), "case_files": [str(f) for f in case.files], "device": device,
              "minutes": minutes}
    return Work(unit["key"], "kernelwright.executor.eval_units:run_unit_at", kwargs, out / "runs" / unit["key"],
                files=("task", "case_files"), log=out / "logs" / f"{unit['key']}.log")


def run_unit_at(out: str, *, unit: dict[str, Any], case: dict[str, Any], task: str, case_files: list[str],
                device: str, minutes: float | None) -> dict[str, Any]:
    """The executor's entry for one unit, in any process on any node; its artifacts go under ``out``."""
    from kernelwright.evals.runner import run_unit
    from kernelwright.evals.suites import Case

    rebuilt = Case(name=case["name"], path=Path(task), prompt=case["prompt"],
                   files=tuple(Path(f) for f in case_files), assertions=tuple(case["assertions"]),
                   expected_output=case["expected_output"])
    return run_unit({**unit, "path": Path(task), "case": rebuilt}, Path(out).parent.parent, device=device,
                    minutes=minutes, work=Path(out))


def run_units(plan: list[dict[str, Any]], out: Path, executor: Executor, *, device: str, minutes: float | None,
              max_dollars: float | None, report: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every unit of ``plan`` not stored under ``out``, on ``executor``; every unit's record, in plan order."""
    from kernelwright.evals.runner import recorded_dollars, skipped_for_budget

    store = UnitStore(out / "units")
    by_key = {unit["key"]: unit for unit in plan}
    skipped: dict[str, dict[str, Any]] = {}

    def within_budget(work: Work) -> str | None:
        if max_dollars is None:
            return None
        spent = recorded_dollars([store.load(key) for key in by_key if store.has(key)])
        if spent < max_dollars:
            return None
        skipped[work.key] = skipped_for_budget(by_key[work.key], spent, max_dollars)
        return f"not started, ${spent:.4f} spent of ${max_dollars:.4f}"

    fresh = [unit for unit in plan if not store.has(unit["key"])]
    report(f"{len(plan) - len(fresh)} of {len(plan)} units stored; running {len(fresh)} on {executor.describe()}")
    try:
        works = [unit_work(u, out, device=executor.unit_device(device), minutes=minutes) for u in fresh]
        finished = execute(executor, works, store, report=report, gate=within_budget)
    finally:
        executor.close()
    return [record(unit, store, finished.get(unit["key"]), skipped) for unit in plan]


def record(unit: dict[str, Any], store: UnitStore, done: Finished | None,
           skipped: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from kernelwright.evals.runner import DONE

    if unit["key"] in skipped:
        return skipped[unit["key"]]
    if store.has(unit["key"]):
        return {"status": DONE, **store.load(unit["key"]), "resumed": done is None}
    failure = done.failure if done is not None else "infrastructure"
    message = done.message if done is not None else "the unit was never run"
    return {**{k: unit[k] for k in ("agent", "skill", "task", "run")}, "status": f"{failure}-failure",
            "correct": None, "task_path": str(unit["path"]), "resumed": False,
            "note": f"not finished ({failure} failure, not a verdict on any kernel): {message}"[:500]}
