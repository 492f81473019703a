#!/usr/bin/env python3
"""A tiny OpenAI-compatible chat-completions server with canned kernel replies (standard library only).

It lets `kernelwright optimize --agent openai-compatible:http://127.0.0.1:PORT/v1:fake-model` run end to
end where there is no model and no network (a GPU box): the planner gets a JSON plan, the first writer
request gets the task's hand-written kernel from examples/<task>.py with a syntax error in it (so the
verifier rejects it and the debugger acts), the debugger and every later writer get the kernel intact.

    python scripts/fake_openai_server.py --port 8765 &
    kernelwright optimize rmsnorm --agent openai-compatible:http://127.0.0.1:8765/v1:fake-model --budget 6

Routes: GET /v1/models, POST /v1/chat/completions. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLAN = {"bottleneck": "memory bandwidth", "headroom": "unknown until measured", "language": "triton",
        "ideas": [{"title": "one program per row, fp32 accumulation", "why": "rows fit in registers",
                   "how": "BLOCK = next power of two of the row"},
                  {"title": "more warps for wide rows", "why": "latency hiding", "how": "num_warps 8 above 4096"}]}


class State:
    def __init__(self, model: str):
        self.model = model
        self.writes = 0
        self.lock = threading.Lock()


def break_source(source: str) -> str:
    """Drop the colon of the first ``def`` line: the file no longer compiles."""
    return re.sub(r"^(def [^\n]*\)):", r"\1", source, count=1, flags=re.MULTILINE)


def reply_for(state: State, system: str, prompt: str) -> str:
    role = system.removeprefix("You are the kernelwright ").split()[0].strip(".,") if system else ""
    task = re.search(r"Task `([\w.-]+)`", prompt)
    example = EXAMPLES / f"{task.group(1) if task else ''}.py"
    if role == "planner":
        return "Plan:\n```json\n" + json.dumps(PLAN, indent=1) + "\n```"
    if not example.is_file():
        return f"I have no canned kernel for this task ({example.name} is not in {EXAMPLES})."
    source = example.read_text()
    if role == "writer":
        with state.lock:
            state.writes += 1
            first = state.writes == 1
        if first:
            return "Here is a first kernel.\n\n```python\n" + break_source(source) + "```\n"
        return "Here is the kernel, one program per row.\n\n```python\n" + source + "```\n"
    return "The def line lacked its colon; here is the fixed file.\n\n```python\n" + source + "```\n"


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 -- http.server's naming
            if self.path.rstrip("/").endswith("/models"):
                return self._send(200, {"object": "list", "data": [
                    {"id": state.model, "object": "model", "created": 0, "owned_by": "kernelwright"}]})
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):  # noqa: N802
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            messages = body.get("messages", [])
            system = next((m["content"] for m in messages if m["role"] == "system"), "")
            prompt = messages[-1]["content"] if messages else ""
            text = reply_for(state, system, prompt)
            tokens_in = sum(len(m.get("content") or "") for m in messages) // 4
            self._send(200, {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                             "model": body.get("model", state.model),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": tokens_in, "completion_tokens": len(text) // 4,
                                       "total_tokens": tokens_in + len(text) // 4}})

        def log_message(self, fmt, *args):
            print(f"fake-openai: {self.command} {self.path}", flush=True)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", default="fake-model")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(args.model)))
    print(f"fake OpenAI-compatible server on http://127.0.0.1:{args.port}/v1 serving '{args.model}'", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
