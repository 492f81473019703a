"""``kernelwright optimize TASK --agent anthropic:MODEL|openai:MODEL|openai-compatible:URL:MODEL|replay:DIR``.

Parses the options into a provider, a budget and a strategy, and runs the conductor. Everything a user
must fix (a bad agent string, a missing key or extra, an endpoint that is down, an unknown model) is a
``UsageError`` raised before the run directory is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from kernelwright.agents.conductor import Budget, SessionResult, Strategy, run_session
from kernelwright.agents.llm import AgentSpec, load_prices, make_provider
from kernelwright.errors import UsageError

DEFAULT_CANDIDATES = 24


def optimize_with_agent(task: str, *, agent: str, out: Path | None = None, device: str = "auto",
                        candidates: int | None = None, tokens: int | None = None, dollars: float | None = None,
                        minutes: float | None = None, samples: int = 4, rounds: int = 6, prices: Path | None = None,
                        report: Callable[[str], None] | None = None) -> SessionResult:
    from kernelwright.tasks.task import load_task

    spec = AgentSpec.parse(agent)
    if spec.kind == "offline":
        raise UsageError("The offline agent is run by `kernelwright optimize --agent offline`, not the LLM team.")
    task_obj = load_task(task)
    provider = make_provider(spec)  # fails here, before anything is written, on a missing key or a dead endpoint
    out = Path(out) if out is not None else Path("kernelwright-runs") / f"{task_obj.name}-{spec.kind}"
    prices = prices or os.environ.get("KERNELWRIGHT_PRICES") or None
    table = load_prices(prices, local=spec.kind == "openai-compatible" and _is_local(spec.base_url))
    return run_session(task, provider=provider, out=out, device=device, prices=table, log=report,
                       budget=Budget(candidates=candidates or DEFAULT_CANDIDATES, tokens=tokens, dollars=dollars,
                                     wall_s=minutes * 60 if minutes else None),
                       strategy=Strategy(samples=samples, rounds=rounds))


def _is_local(url: str | None) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url or "").hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
