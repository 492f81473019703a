import json
import sys

import pytest

from kernelwright.agents.llm import AgentSpec, load_prices, make_provider
from kernelwright.agents.llm.base import RetryPolicy, Transient, with_retries
from kernelwright.errors import UsageError


@pytest.mark.parametrize("text, kind, model, url", [
    ("anthropic:claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5", None),
    ("openai:gpt-4.1", "openai", "gpt-4.1", None),
    ("openai-compatible:http://127.0.0.1:8000/v1:Qwen/Qwen2.5-Coder-32B", "openai-compatible",
     "Qwen/Qwen2.5-Coder-32B", "http://127.0.0.1:8000/v1"),
    ("openai-compatible:http://localhost:11434/v1:llama3.1:8b", "openai-compatible", "llama3.1:8b",
     "http://localhost:11434/v1"),
    ("openai-compatible:https://openrouter.ai/api/v1:deepseek/deepseek-r1", "openai-compatible",
     "deepseek/deepseek-r1", "https://openrouter.ai/api/v1"),
])
def test_agent_spec_parses(text, kind, model, url):
    spec = AgentSpec.parse(text)
    assert (spec.kind, spec.model, spec.base_url) == (kind, model, url)
    assert AgentSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", ["gpt-4", "anthropic:", "openai-compatible:localhost:gpt", "mystery:x"])
def test_bad_agent_spec_is_one_sentence(text):
    with pytest.raises(UsageError, match="agent|openai-compatible:URL:MODEL"):
        AgentSpec.parse(text)


def test_missing_keys_are_usage_errors_naming_the_variable():
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY"):
        make_provider(AgentSpec.parse("anthropic:claude-sonnet-4"), env={})
    with pytest.raises(UsageError, match="OPENAI_API_KEY"):
        make_provider(AgentSpec.parse("openai:gpt-4o"), env={})


def test_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)  # as if not installed
    with pytest.raises(UsageError, match=r"kernelwright\[llm\]"):
        make_provider(AgentSpec.parse("anthropic:claude-sonnet-4"), env={"ANTHROPIC_API_KEY": "x"})


def test_prices_longest_prefix_and_user_override(tmp_path):
    table = load_prices()
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)  # not gpt-4o's price
    assert table.cost("some-local-model", 10, 10) is None
    (tmp_path / "p.json").write_text(json.dumps({"some-local": {"input": 1.0, "output": 2.0}}))
    assert load_prices(tmp_path / "p.json").cost("some-local-model", 1e6, 1e6) == pytest.approx(3.0)
    (tmp_path / "p.toml").write_text('[gpt-4o]\ninput = 0.0\noutput = 1.0\n')
    if sys.version_info >= (3, 11):
        assert load_prices(tmp_path / "p.toml").cost("gpt-4o", 1e6, 1e6) == pytest.approx(1.0)
    (tmp_path / "bad.json").write_text('{"x": 3}')
    with pytest.raises(UsageError, match="bad.json"):
        load_prices(tmp_path / "bad.json")


def test_backoff_grows_and_honours_retry_after():
    slept, outcomes = [], [Transient("429", retry_after=7.0), Transient("500"), Transient("500"), "ok"]

    def call():
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    value, attempts = with_retries(call, RetryPolicy(attempts=5, base_s=1.0, sleep=slept.append), what="x")
    assert (value, attempts) == ("ok", 4)
    assert slept[0] == 7.0 and 2.0 <= slept[1] <= 2.5 and 4.0 <= slept[2] <= 5.0


def test_retries_run_out_with_one_sentence():
    def down():
        raise Transient("connection refused", unreachable=True)

    with pytest.raises(UsageError, match="Cannot reach the server"):
        with_retries(down, RetryPolicy(attempts=3, sleep=lambda s: None), what="the server")
