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

from kernelwright.errors import UsageError
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


def run_gpus(device: str, gpus: str | None) -> list[str]:
    """The run's devices: ``device`` (resolved) alone, or ``--gpus 0,1`` as ``cuda:0``, ``cuda:1`` (indices
    among the visible GPUs, validated as eval's ``--gpus`` is); the first is where every timing runs."""
    if gpus is None:
        return [device]
    from kernelwright.executor import local

    pins = local.parse_gpus(gpus, device)
    visible = local.visible_gpus()
    return [f"cuda:{visible.index(pin)}" for pin in pins]


def optimize(task: str | Path, *, agent: str = "offline", out: str | Path | None = None, device: str = "auto",
             budget: int | None = None, minutes: float | None = None, report: Reporter = lambda _: None,
             limits: Limits = Limits(timeout_s=600), verify_shapes: int = VERIFY_SHAPES,
             tokens: int | None = None, dollars: float | None = None, samples: int = 4, rounds: int = 6,
             prices: Path | None = None, gpus: str | None = None) -> OptimizeResult:
    """Optimize ``task`` with ``agent`` into the run directory ``out`` (the same directory resumes).

    ``budget``: tuning rounds (offline) or candidates (LLM team); ``minutes``: the time budget (offline
    default 3, LLM default none; 0: none); ``tokens``, ``dollars``, ``samples``, ``rounds``: LLM team
    only; ``gpus`` (``"0,1"``): the offline agent verifies its later probes on the GPUs after the first
    while it tunes on the first (default: ``device`` alone). Raises UsageError (bad input, nothing
    written) or OptimizeLimit (offline: op not covered)."""
    started = time.monotonic()
    kind = check_agent(agent)
    task_obj = load_task(task)
    explicit = device
    devices = run_gpus(resolve_device(device), gpus)
    if explicit.startswith("cuda:") and gpus is not None and explicit != devices[0]:
        raise UsageError(f"--device {explicit} and --gpus {gpus} disagree: the first GPU of --gpus is where the run "
                         "times its kernels; drop --device or list that GPU first.")
    if kind != "offline" and len(devices) > 1:
        raise UsageError("--gpus with several GPUs is for the offline agent; LLM agents use one GPU (not yet "
                         "several); use eval or autopilot to spread work over several GPUs.")
    device = devices[0]
    out_dir = Path(out) if out is not None else default_out(task_obj, agent)
    if kind == "offline":
        return run_offline(task_obj, device=device, out=out_dir, budget=budget, minutes=minutes, limits=limits,
                           verify_shapes=verify_shapes, report=report, started=started, gpus=devices)
    from kernelwright.agents.session import run_llm_team

    return run_llm_team(task_obj, agent=agent, out=out_dir, device=device, candidates=budget, tokens=tokens,
                        dollars=dollars, minutes=minutes, samples=samples, rounds=rounds, prices=prices,
                        report=report, started=started)
