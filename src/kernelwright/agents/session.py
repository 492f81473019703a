"""The LLM team behind ``optimize(task, agent="anthropic:MODEL"|"openai:MODEL"|"openai-compatible:URL:MODEL"|
"replay:DIR")`` (``run/entry.py`` picks the agent).

Parses the options into a provider, a budget and a strategy, and runs the conductor. Everything a user
must fix (a bad agent string, a missing key or extra, an endpoint that is down, an unknown model) is a
``UsageError`` raised before the run directory is touched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kernelwright.agents.conductor import Budget, SessionResult, Strategy, run_session
from kernelwright.agents.llm import AgentSpec, load_prices, make_provider
from kernelwright.run.result import OptimizeResult, Reporter
from kernelwright.tasks.task import Task

DEFAULT_CANDIDATES = 24


def run_llm_team(task: Task, *, agent: str, out: Path, device: str, candidates: int | None = None,
                 tokens: int | None = None, dollars: float | None = None, minutes: float | None = None,
                 samples: int = 4, rounds: int = 6, prices: Path | None = None, report: Reporter | None = None,
                 started: float | None = None) -> OptimizeResult:
    started = time.monotonic() if started is None else started
    spec = AgentSpec.parse(agent)
    provider = make_provider(spec)  # fails here, before anything is written, on a missing key or a dead endpoint
    prices = prices or os.environ.get("KERNELWRIGHT_PRICES") or None
    table = load_prices(prices, local=spec.kind == "openai-compatible" and _is_local(spec.base_url))
    session = run_session(str(task.path), provider=provider, out=out, device=device, prices=table, log=report,
                          budget=Budget(candidates=candidates or DEFAULT_CANDIDATES, tokens=tokens, dollars=dollars,
                                        wall_s=minutes * 60 if minutes else None),
                          strategy=Strategy(samples=samples, rounds=rounds))
    return as_result(session, task=task.name, agent=agent, device=device, seconds=time.monotonic() - started)


def as_result(session: SessionResult, *, task: str, agent: str, device: str, seconds: float) -> OptimizeResult:
    """A session in the shape every agent's run returns."""
    best = session.best_path
    message = (f"{session.best} verified and benchmarked" if best else "no candidate was accepted")
    return OptimizeResult(task=task, agent=agent, out=session.run_dir, device=device, best_path=best,
                          accepted=best is not None, message=message, verdict=session.verdict,
                          final_rows=(session.bench or {}).get("rows", []),
                          ceilings=(session.bench or {}).get("ceilings"), evaluations=session.evaluations,
                          seconds=seconds, resumed=session.resumed, bench=session.bench,
                          session={"stop_reason": session.stop_reason, "best": session.best,
                                   "best_score": session.best_score, "candidates": session.candidates,
                                   "accepted": session.accepted, "totals": session.totals})


def _is_local(url: str | None) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url or "").hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
