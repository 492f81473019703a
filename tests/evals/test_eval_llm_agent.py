"""``kernelwright eval`` with the offline agent and an OpenAI-compatible LLM agent, on the CPU.

The LLM agent is pointed (through its ``openai-compatible:URL:MODEL`` string, as in ``optimize``) at a
scripted chat-completions server on a local port: the real ``openai`` SDK, the real LLM team, the real
verifier. The server answers each role from a script and reports a distinct usage for every reply, so
the eval's token, call, repair and dollar numbers can be checked against what the server reported.

Runtime: each task is named so that no example seeds the team (a seed costs a verification and a bench),
the written kernel has no literal to tune (so the tuner adds no candidates), and only one writer per task
answers with code, a cheat the static policy refuses unrun; so a unit runs one sandboxed verification
(the debugger's fix) and one bench, and the session stops after two rounds without a gain.
"""

import csv
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("openai")

from kernelwright.agents import tuner  # noqa: E402
from kernelwright.errors import UsageError  # noqa: E402
from kernelwright.evals import run_eval  # noqa: E402
from kernelwright.run import entry  # noqa: E402
from kernelwright.tasks.task import SUITE_DIR  # noqa: E402

MODEL = "fake-model"
PRICE_IN, PRICE_OUT = 2.0, 8.0  # $ per million tokens, from the price file the eval is given
# the suite's tasks, renamed "act_<op>" so that no examples/<task>.py seeds the session; y from x in fp32
OPS = {"gelu": "0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))",
       "relu_squared": "tl.where(x < 0.0, 0.0, x) * tl.where(x < 0.0, 0.0, x)",
       "silu": "x / (1.0 + tl.exp(-x))"}

KERNEL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl

SIZE = 1024


@triton.jit
def _kernel(x_ptr, out_ptr, n_elements, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = {expr}
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        _kernel[(triton.cdiv(n, SIZE),)](x, out, n, BLOCK=SIZE)
        return out
'''
PLAN = ('```json\n{"bottleneck": "memory", "headroom": "some", "language": "triton", "ideas": '
        '[{"title": "one pass", "why": "bandwidth", "how": "fp32 math, masked tail"}]}\n```')


def kernel(op: str) -> str:
    return KERNEL.format(expr=OPS[op])


def cheat(op: str) -> str:
    # returns the reference's own answer, found through sys.modules: the static policy refuses it unrun,
    # which keeps the rejection cheap (a candidate that runs costs a sandboxed verification)
    return kernel(op).replace("import torch\n", "import sys\nimport torch\n", 1).replace(
        "        return out\n", "        task = next(m for m in sys.modules.values() if hasattr(m, 'get_inputs'))\n"
        "        return task.Model()(x)\n")


class ScriptedServer:
    """A chat-completions server on 127.0.0.1: per task, the first writer gets a cheating file back, the
    debugger the correct one, every other writer prose without code. ``calls`` keeps each reply's role,
    task and the usage reported for it."""

    def __init__(self, models=(MODEL,)):
        self.calls: list[dict] = []
        self.models = list(models)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, role: str, task: str) -> str:
        op = task.removeprefix("act_")
        if role == "planner":
            return PLAN
        if role == "debugger":
            return f"It used the reference; fixed:\n\n```python\n{kernel(op)}```\n"
        if any(c["task"] == task and c["role"] == "writer" for c in self.calls):
            return "Nothing better comes to mind."
        return f"Here it is:\n\n```python\n{cheat(op)}```\n"

    def answer(self, body: dict) -> dict:
        system, prompt = body["messages"][0]["content"], body["messages"][-1]["content"]
        role = re.match(r"You are the kernelwright (\w+)", system).group(1)
        task = re.search(r"Task `([^`]+)`", prompt).group(1)
        with self.lock:
            text = self.reply(role, task)
            n = len(self.calls) + 1  # a usage no other reply reports: sums cannot match by accident
            usage = {"prompt_tokens": 1000 + 7 * n, "completion_tokens": 20 + n}
            self.calls.append({"role": role, "task": task, **usage})
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}}

    def handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, value: dict) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # /v1/models: the provider checks the model is served before the run
                self.send({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "test"}
                                                      for m in server.models]})

            def do_POST(self):
                self.send(server.answer(json.loads(self.rfile.read(int(self.headers["content-length"])))))

        return Handler


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def suite_of(tmp_path, ops=tuple(OPS)):
    suite = tmp_path / "suite"
    suite.mkdir()
    for op in ops:
        shutil.copyfile(SUITE_DIR / f"{op}.py", suite / f"act_{op}.py")
    return suite


def test_the_written_kernel_gives_the_tuner_nothing_to_vary():
    # the runtime above rests on this: a tunable literal would add two verified and benched variants a round
    assert tuner.variants(kernel("gelu")) == []


def test_an_eval_of_offline_and_an_openai_compatible_agent_records_every_metric_from_the_server(
        tmp_path, monkeypatch, server):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({MODEL: {"input": PRICE_IN, "output": PRICE_OUT}}))
    monkeypatch.setenv("KERNELWRIGHT_PRICES", str(prices))
    suite, out = suite_of(tmp_path), tmp_path / "eval"
    llm = f"openai-compatible:{server.url}:{MODEL}"
    results = run_eval(str(suite), ["offline", llm], out=out, device="cpu", minutes=3.0)

    units = {(u["agent"], u["task"]): u for u in results["units"]}
    assert sorted(units) == sorted((a, f"act_{op}") for a in ("offline", llm) for op in OPS)
    for (agent, task), u in units.items():
        assert u["status"] == "done" and u["correct"] is True, u["note"]
        assert not u["timings_meaningful"] and u["speedup_eager"] is None and u["roofline_pct"] is None  # CPU
        assert u["wall_s"] > 0
        if agent == "offline":
            assert (u["tokens"], u["dollars"], u["llm_calls"], u["repairs"], u["tool_calls"]) == (0, 0.0, 0, 0, 0)
            continue
        asked = [c for c in server.calls if c["task"] == task]
        tokens_in, tokens_out = sum(c["prompt_tokens"] for c in asked), sum(c["completion_tokens"] for c in asked)
        assert (u["tokens_in"], u["tokens_out"], u["tokens"]) == (tokens_in, tokens_out, tokens_in + tokens_out)
        assert u["llm_calls"] == len(asked)
        assert u["repairs"] == sum(c["role"] == "debugger" for c in asked) == 1
        assert u["dollars"] == pytest.approx((tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1e6)
        assert u["tool_calls"] == 0  # the team's models are given no tools
        log = [json.loads(line) for line in (Path(u["out"]) / "agent.log").read_text().splitlines()]
        verdicts = [(e["accepted"], e["checks"]) for e in log if e["event"] == "verify"]
        assert len(verdicts) == 2 and not verdicts[0][0] and "forbidden_import" in verdicts[0][1] and verdicts[1][0]

    groups = {g["agent"]: g for g in results["aggregates"]}
    team = groups[llm]
    assert (team["skill"], team["units"], team["correct_rate"]) == ("builtin", len(OPS), 1.0)
    assert team["fast_p_eager"]["1.0"] is None and team["fast_p_compile"]["0.0"] is None  # untimed: not scored
    assert team["totals"]["tokens_in"] == sum(c["prompt_tokens"] for c in server.calls)
    assert team["totals"]["llm_calls"] == len(server.calls)
    assert groups["offline"]["totals"]["tokens"] == 0
    rows = [r for r in csv.DictReader((out / "results.csv").open()) if r["agent"] == llm]
    assert sorted(int(r["tokens_out"]) for r in rows) == sorted(units[(llm, r["task"])]["tokens_out"] for r in rows)

    # a rerun is answered from the store: the server is gone, no unit runs, the numbers are the same
    server.close()
    monkeypatch.setattr(entry, "optimize", lambda *a, **k: pytest.fail("a stored unit was optimized again"))
    again = run_eval(str(suite), ["offline", llm], out=out, device="cpu")
    assert all(u["resumed"] for u in again["units"])
    assert again["aggregates"] == results["aggregates"]


def test_an_llm_agent_its_server_cannot_serve_is_a_usage_error_before_any_unit_runs(tmp_path):
    wrong = ScriptedServer(models=["another-model"])
    try:
        with pytest.raises(UsageError, match=f"does not serve model '{MODEL}'"):
            run_eval(str(suite_of(tmp_path, ("relu_squared",))), ["offline", f"openai-compatible:{wrong.url}:{MODEL}"],
                     out=tmp_path / "eval", device="cpu", minutes=1.0)
    finally:
        wrong.close()
    assert not wrong.calls and not list((tmp_path / "eval").glob("units/*.json"))
