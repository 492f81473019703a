"""The agent team: LLM providers, the roles with their artifacts, and the conductor that runs them.

``run_session(task, provider=make_provider(AgentSpec.parse("anthropic:MODEL")), out=DIR)`` is the whole
job; ``kernelwright optimize TASK --agent ...`` calls it.
"""

from kernelwright.agents.conductor import Budget, Conductor, SessionResult, Strategy, run_session
from kernelwright.agents.llm import AgentSpec, ScriptedProvider, load_prices, make_provider

__all__ = ["AgentSpec", "Budget", "Conductor", "ScriptedProvider", "SessionResult", "Strategy", "load_prices",
           "make_provider", "run_session"]
