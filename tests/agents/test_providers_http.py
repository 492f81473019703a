"""The real ``anthropic`` and ``openai`` SDKs, end to end over ``MockTransport``: no network, real protocol."""

import pytest

pytest.importorskip("anthropic")
pytest.importorskip("openai")

from fakes import FakeLLMServer, httpx_module  # noqa: E402

from kernelwright.agents.llm import AgentSpec, RetryPolicy, make_provider  # noqa: E402
from kernelwright.errors import UsageError  # noqa: E402

ASK = [{"role": "user", "content": "write the kernel"}]


def answer(role, system, messages):
    return f"role={role} asked={messages[-1]['content']}"


def provider(spec, server, slept, env=None, **kw):
    return make_provider(AgentSpec.parse(spec), env=env or {"ANTHROPIC_API_KEY": "sk-ant-test",
                                                            "OPENAI_API_KEY": "sk-test"},
                         http_client=server.client(), retry=RetryPolicy(attempts=4, base_s=0.5, sleep=slept.append),
                         **kw)


@pytest.mark.parametrize("spec", ["anthropic:claude-test", "openai:gpt-4o",
                                  "openai-compatible:http://127.0.0.1:9/v1:fake-model"])
def test_a_429_and_a_500_are_retried_then_the_reply_and_tokens_come_back(spec):
    server = FakeLLMServer(answer, models=["fake-model"])
    slept = []
    p = provider(spec, server, slept)
    server.failures = [429, 500]
    reply = p.complete("You are the kernelwright writer.", ASK, max_tokens=100, temperature=0.5)
    assert reply.text == "role=writer asked=write the kernel"
    assert reply.attempts == 3 and len(slept) == 2 and slept[1] >= 1.0  # backoff grows
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    posts = [s for s in server.seen if not s[0].endswith("/models")]
    assert len(posts) == 3 and posts[-1][2]["model"] == spec.rsplit(":", 1)[1]


def test_keys_go_where_they_belong_and_nowhere_else():
    server = FakeLLMServer(answer, models=["fake-model"])
    env = {"ANTHROPIC_API_KEY": "sk-ant-A", "OPENAI_API_KEY": "sk-OPENAI"}
    provider("openai-compatible:http://127.0.0.1:9/v1:fake-model", server, [], env=env).complete(
        "s", ASK, max_tokens=10, temperature=0)
    headers = " ".join(str(h) for _, h, _ in server.seen)
    assert "sk-OPENAI" not in headers and "sk-ant-A" not in headers  # a third-party URL never gets OpenAI's key
    server.seen.clear()
    provider("openai:gpt-4o", server, [], env=env).complete("s", ASK, max_tokens=10, temperature=0)
    assert "sk-OPENAI" in " ".join(str(h) for _, h, _ in server.seen)


def test_unknown_model_is_one_sentence():
    server = FakeLLMServer(answer)
    p = provider("anthropic:claude-nope", server, [])
    server.failures = [404]
    with pytest.raises(UsageError, match="does not know the model 'claude-nope'"):
        p.complete("s", ASK, max_tokens=10, temperature=0)
    with pytest.raises(UsageError, match="does not serve model 'other'.*fake-model"):
        provider("openai-compatible:http://127.0.0.1:9/v1:other", FakeLLMServer(answer, models=["fake-model"]), [])


def test_rejected_key_is_one_sentence():
    server = FakeLLMServer(answer)
    p = provider("openai:gpt-4o", server, [])
    server.failures = [401]
    with pytest.raises(UsageError, match="refused the API key.*OPENAI_API_KEY"):
        p.complete("s", ASK, max_tokens=10, temperature=0)


def test_unreachable_endpoint_is_one_sentence_after_retries():
    httpx = httpx_module()

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    slept = []
    with pytest.raises(UsageError, match="Cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1"):
        make_provider(AgentSpec.parse("openai-compatible:http://127.0.0.1:9/v1:m"), env={},
                      http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
                      retry=RetryPolicy(attempts=3, sleep=slept.append))
    assert len(slept) == 2
