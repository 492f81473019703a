"""LLM providers behind one small interface, their price table, and the record/replay journal."""

from kernelwright.agents.llm.base import Completion, Provider, RetryPolicy, Transient, with_retries
from kernelwright.agents.llm.journal import Journal, ReplayProvider
from kernelwright.agents.llm.pricing import PriceTable, load_prices
from kernelwright.agents.llm.scripted import ScriptedProvider
from kernelwright.agents.llm.spec import AgentSpec, make_provider

__all__ = ["AgentSpec", "Completion", "Journal", "PriceTable", "Provider", "ReplayProvider", "RetryPolicy",
           "ScriptedProvider", "Transient", "load_prices", "make_provider", "with_retries"]
