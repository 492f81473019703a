"""Deterministic stand-ins for the parts of a session that are not under test.

* ``scripted_answer``: an LLM script for the relu_squared task. Kernels carry a ``# cost_ms: X`` marker.
* ``fake_bench``: "faster" is decided by that marker, not by a clock — CPU timings under the Triton
  interpreter mean nothing, so a test that wants a faster kernel must control the number.
* ``fake_verify``: accepts unless the source says ``BROKEN`` (a compile error) or ``CHEAT`` (an input
  mutation); the tests that need the real verifier (sandboxed, interpreter) use it instead.
* HTTP handlers that speak the Anthropic Messages and OpenAI chat-completions protocols, for
  ``MockTransport``: the real SDKs run end to end without a network.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from pathlib import Path

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "relu_squared.py").read_text()

CHEAT = '''import torch
import torch.nn as nn
import os
print("ENV DUMP", dict(os.environ))  # what a hostile candidate would try to steal


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x.clamp_(min=0)  # CHEAT: reuses the input's memory
        return x.mul_(x)
'''


def kernel(source: str, cost: float, *, broken: bool = False) -> str:
    if broken:  # BROKEN: a missing colon, so the file does not even compile
        source = source.replace("def relu_squared(x):", "def relu_squared(x)") if "def relu_squared(x):" in source \
            else source.replace("def forward(self, x):", "def forward(self, x)")
    return f"{source.rstrip()}\n# cost_ms: {cost}\n"


def fenced(source: str, prose: str = "Here is the kernel.") -> str:
    return f"{prose}\n\n```python\n{source}```\n\nIt should be faster."


def scripted_answer(role: str, system: str, messages: list[dict]) -> str:
    """Round 1: sample 0 does not compile, sample 1 cheats; the debugger repairs both (the compile error
    with the Triton example, the cheat with a torch kernel). Round 2 writers return the fastest kernel."""
    prompt = messages[-1]["content"]
    if role == "planner":
        return '```json\n{"bottleneck": "memory", "headroom": "some", "language": "triton", "ideas": [' \
               '{"title": "vectorise loads", "why": "bandwidth", "how": "wider blocks"}, ' \
               '{"title": "fewer programs", "why": "launch", "how": "grid-stride"}]}\n```'
    if role == "debugger":
        if "mutated" in prompt or "CHEAT" in prompt:
            return fenced(kernel(EXAMPLE.replace("min(4096,", "min(2048,"), 0.8), "It wrote into its input; fixed:")
        return fenced(kernel(EXAMPLE, 0.5), "A colon was missing:")
    if role == "writer":
        if "Rejected earlier in this run" in prompt:  # round 2: the rejection was fed back
            return fenced(kernel(EXAMPLE.replace("num_warps=8", "num_warps=4"), 0.3))
        if "This sample's direction" in prompt and '"vectorise loads"' in prompt:
            return fenced(kernel(EXAMPLE, 0.7, broken=True))
        return fenced(CHEAT + "# cost_ms: 0.1\n")
    raise AssertionError(f"unexpected role {role!r}")


def cost_of(source: str) -> float:
    m = re.search(r"# cost_ms: ([0-9.]+)", source)
    return float(m.group(1)) if m else 1.0


class Counter:
    def __init__(self):
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def add(self, what: str) -> None:
        with self.lock:
            self.calls.append(what)


def fake_bench(counter: Counter | None = None):
    def bench(path: Path) -> dict:
        source = Path(path).read_text()
        if counter is not None:
            counter.add(Path(path).read_text())
        ms = cost_of(source)
        row = {"knobs": {"tokens": 64, "intermediate": 64}, "dtype": "float32", "bytes": 32768, "flops": 0,
               "timings": {"candidate": {"median_ms": ms}, "candidate_repeat": {"median_ms": ms},
                           "eager": {"median_ms": 1.0}},
               "speedup": {"eager": 1.0 / ms}, "fastest_baseline": "eager", "gbps": 32768 / (ms * 1e-3) / 1e9,
               "fraction_of_copy": None, "bound": None, "recheck": {"passed": True, "rel_err": 0.0}}
        return {"schema": "kernelwright.bench/1", "ok": True, "timings_meaningful": False, "rows": [row],
                "failures": [], "ceilings": None}
    return bench


def fake_verify(counter: Counter | None = None):
    def verify(path: Path) -> dict:
        source = Path(path).read_text()
        if counter is not None:
            counter.add(source)
        failures = []
        try:
            compile(source, str(path), "exec")
        except SyntaxError as exc:
            failures.append({"check": "exception", "message": f"SyntaxError: {exc.msg}", "case": None})
        if "CHEAT" in source:
            failures.append({"check": "mutated_input", "message": "ModelNew wrote to input(s) [0]",
                             "case": {"knobs": {"tokens": 1, "intermediate": 7}, "dtype": "float32",
                                      "distribution": "normal", "seed": 1}})
        return {"schema": "kernelwright.verify/1", "accepted": not failures, "failures": failures, "log_tail": ""}
    return verify


def httpx_module():
    """The HTTP library the installed SDKs are built on (``httpx``; some builds vendor it as ``httpx2``)."""
    import openai

    return importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])


def _prompt(body: dict) -> tuple[str, list[dict]]:
    system = body.get("system", "")
    messages = body["messages"]
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    if isinstance(system, list):
        system = "".join(block.get("text", "") for block in system)
    return system, messages


class FakeLLMServer:
    """A MockTransport handler speaking both protocols; ``failures`` is a list of HTTP statuses to answer
    first (429, 500, ...), and ``seen`` keeps every request (headers included) for assertions."""

    def __init__(self, answer, *, failures: list[int] | None = None, models: list[str] | None = None):
        from kernelwright.agents.llm.scripted import _role_of

        self.answer, self.role_of = answer, _role_of
        self.failures = list(failures or [])
        self.models = models
        self.seen: list[tuple[str, dict, dict]] = []
        self.lock = threading.Lock()
        self.httpx = httpx_module()

    def transport(self):
        return self.httpx.MockTransport(self)

    def client(self):
        return self.httpx.Client(transport=self.transport())

    def __call__(self, request):
        httpx = self.httpx
        body = json.loads(request.content or b"{}")
        with self.lock:
            self.seen.append((str(request.url), dict(request.headers), body))
            status = self.failures.pop(0) if self.failures else None
        if status:
            return httpx.Response(status, json={"error": {"type": "fake", "message": f"injected {status}"}},
                                  headers={"retry-after": "0"} if status == 429 else {})
        path = request.url.path
        if path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in (self.models or [])]})
        system, messages = _prompt(body)
        text = self.answer(self.role_of(system), system, messages)
        tokens_in = sum(len(m["content"]) for m in messages) // 4
        if path.endswith("/v1/messages"):
            return httpx.Response(200, json={
                "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": len(text) // 4}})
        if path.endswith("/chat/completions"):
            return httpx.Response(200, json={
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": len(text) // 4,
                          "total_tokens": tokens_in + len(text) // 4}})
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})
