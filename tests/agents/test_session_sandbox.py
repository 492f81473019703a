"""A whole session through the real Anthropic SDK (fake HTTP transport) and the real sandboxed verifier
(Triton interpreter on CPU). Only the bench is injected: "faster" comes from the ``# cost_ms`` marker,
because interpreter timings mean nothing.

It also proves that secrets stay out: a fake API key is set in the environment, one scripted candidate
dumps ``os.environ`` from inside the sandbox, and afterwards no file of the run directory and no row of
the SQLite dump contains the key.
"""

import sqlite3

import pytest

pytest.importorskip("anthropic")

from fakes import EXAMPLE, FakeLLMServer, fake_bench, kernel, scripted_answer  # noqa: E402

from kernelwright.agents import Budget, Strategy, run_session  # noqa: E402
from kernelwright.agents.evaluate import Evaluator  # noqa: E402
from kernelwright.agents.llm import AgentSpec, RetryPolicy, make_provider  # noqa: E402
from kernelwright.sandbox.runner import Limits  # noqa: E402
from kernelwright.verify import verify  # noqa: E402

SECRET = "sk-ant-kwtest-3f9c2a7d1e"


def test_session_over_the_anthropic_sdk_repairs_rejects_cheats_and_keeps_the_key_out(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    server = FakeLLMServer(scripted_answer, failures=[429, 500])  # the first call is retried twice
    provider = make_provider(AgentSpec.parse("anthropic:claude-test"), http_client=server.client(),
                             retry=RetryPolicy(sleep=lambda s: None))
    evaluator = Evaluator("relu_squared", "cpu", verify_shapes=2, limits=Limits(timeout_s=120),
                          bench_fn=fake_bench())
    # The static policy would refuse the hostile candidate's `import os` before it ran; it is switched off
    # here so that the candidate really runs in the sandbox and tries to read the key.
    evaluator._verify_fn = lambda path: verify("relu_squared", path, device="cpu", limits=Limits(timeout_s=120),
                                               shapes=2, static_policy=False).as_json()
    out = tmp_path / "run"
    result = run_session("relu_squared", provider=provider, out=out, evaluator=evaluator,
                         seeds=[("examples/relu_squared.py", kernel(EXAMPLE, 0.9))], budget=Budget(candidates=6),
                         strategy=Strategy(samples=2, rounds=2, repairs=1, variants=0, parallel=2))

    con = sqlite3.connect(out / "run.sqlite")
    verdicts = dict(con.execute("SELECT c.name, e.status FROM evaluations e JOIN candidates c ON c.id = e.candidate_id "
                                "WHERE e.kind = 'verify'").fetchall())
    # the real verifier: the file that does not compile and the cheat are rejected, both repairs accepted
    assert verdicts["r01-s00"] == "rejected" and verdicts["r01-s01"] == "rejected"
    assert verdicts["r01-s00-fix1"] == "accepted" and verdicts["r01-s01-fix1"] == "accepted"
    checks = {row[0] for row in con.execute(
        "SELECT json_extract(f.value, '$.check') FROM evaluations e JOIN candidates c ON c.id = e.candidate_id, "
        "json_each(e.result, '$.failures') f WHERE c.name = 'r01-s01'")}
    assert "mutated_input" in checks
    # the rejection was fed back: round 2's writer prompt names it; round 2 found the fastest kernel
    writes = [body for url, _, body in server.seen if body.get("system", "").startswith(
        "You are the kernelwright writer") and "Rejected earlier" in body["messages"][-1]["content"]]
    assert writes and "mutated_input" in writes[0]["messages"][-1]["content"]
    assert result.best == "r02-s00" and "# cost_ms: 0.3" in (out / "best.py").read_text()
    attempts = dict(con.execute("SELECT call_key, attempts FROM llm_calls"))
    assert attempts["r01/plan"] == 3  # 429, 500, then the answer

    # secrets: the candidate process printed its environment, and the key was not in it
    dumps = [row[0] for row in con.execute("SELECT e.result FROM evaluations e JOIN candidates c ON "
                                           "c.id = e.candidate_id WHERE c.name = 'r01-s01'")]
    assert any("ENV DUMP" in d and "PATH" in d for d in dumps)
    assert any(h.get("authorization") == f"Bearer {SECRET}" or h.get("x-api-key") == SECRET
               for _, h, _ in server.seen)  # the key did go to the API...
    for path in out.rglob("*"):  # ...and nowhere else
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in "\n".join(con.iterdump())
