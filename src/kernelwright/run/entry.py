"""``optimize(task, agent=...)``: the one library entry point of the main job, for every agent.

``offline`` (the default: no key, no network) runs the generator and tuner of ``run/offline.py``;
``anthropic:MODEL``, ``openai:MODEL``, ``openai-compatible:URL:MODEL`` and ``replay:RUN_DIR`` run the
LLM team (``agents/conductor.py``). Both write into the same run layer (``run/artifacts.py``,
``run/ledger.py``) and return the same :class:`OptimizeResult`, whose verdict compares the best kernel
with the fastest baseline. The CLI calls this and nothing else.
"""

from __future__ import annotations

import time
from pathlib import Path

from kernelwright.hardware import resolve_device
from kernelwright.run.offline import VERIFY_SHAPES, run_offline
from kernelwright.run.result import OptimizeResult, Reporter
from kernelwright.sandbox.runner import Limits
from kernelwright.tasks.task import Task, load_task

def default_out(task: Task, agent: str = "offline") -> Path:
    if agent == "offline":
        return Path("kernelwright-runs") / task.name
    return Path("kernelwright-runs") / f"{task.name}-{agent.split(':')[0]}"


def check_agent(agent: str) -> str:
    """``offline`` or the kind of an LLM agent; anything else is a usage error."""
    from kernelwright.agents.llm.spec import AgentSpec

    return AgentSpec.parse(agent).kind


def optimize(task: str | Path, *, agent: str = "offline", out: str | Path | None = None, device: str = "auto",
             budget: int | None = None, minutes: float | None = None, report: Reporter = lambda _: None,
             limits: Limits = Limits(timeout_s=600), verify_shapes: int = VERIFY_SHAPES,
             tokens: int | None = None, dollars: float | None = None, samples: int = 4, rounds: int = 6,
             prices: Path | None = None) -> OptimizeResult:
    """Optimize ``task`` with ``agent`` into the run directory ``out`` (the same directory resumes).

    ``budget``: tuning rounds (offline) or candidates (LLM team); ``minutes``: the time budget (offline
    default 3, LLM default none; 0: none); ``tokens``, ``dollars``, ``samples``, ``rounds``: LLM team
    only. Raises UsageError (bad input, nothing written) or OptimizeLimit (offline: op not covered)."""
    started = time.monotonic()
    kind = check_agent(agent)
    task_obj = load_task(task)
    device = resolve_device(device)
    out_dir = Path(out) if out is not None else default_out(task_obj, agent)
    if kind == "offline":
        return run_offline(task_obj, device=device, out=out_dir, budget=budget, minutes=minutes, limits=limits,
                           verify_shapes=verify_shapes, report=report, started=started)
    from kernelwright.agents.session import run_llm_team

    return run_llm_team(task_obj, agent=agent, out=out_dir, device=device, candidates=budget, tokens=tokens,
                        dollars=dollars, minutes=minutes, samples=samples, rounds=rounds, prices=prices,
                        report=report, started=started)
