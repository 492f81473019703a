"""The MCP server through the SDK's own client: in memory and over stdio as a subprocess (CPU, Triton
interpreter). Each verification is one drawn shape, so the file stays well under two minutes."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.shared.memory import create_connected_server_and_client_session  # noqa: E402

from kernelwright.mcp_server import build_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOOD = REPO / "examples" / "rmsnorm.py"
CHEAT = REPO / "tests" / "corpus" / "cheat_returns_zeros.py"  # task softmax: returns zeros
LONG_TOOLS = ("verify", "bench", "optimize", "package")


def in_memory(roots, body):
    """Run ``body(session)`` against a fresh in-memory server whose allowed roots are ``roots``."""
    async def main():
        async with create_connected_server_and_client_session(build_server(roots)) as session:
            return await body(session)

    return asyncio.run(main())


def over_stdio(body, *extra_args):
    """Run ``body(session)`` against ``python -m kernelwright mcp`` started as a subprocess in the repo."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "kernelwright", "mcp", *extra_args],
                                   cwd=str(REPO), env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)

    return asyncio.run(main())


def error_text(result) -> str:
    assert result.isError, result
    return result.content[0].text


def test_tools_are_listed_with_input_and_output_schemas_in_memory():
    async def body(session):
        return (await session.list_tools()).tools

    tools = {t.name: t for t in in_memory([REPO], body)}
    expected = {"list_tasks", "describe_task", "read_run", "job_status", "job_result", *LONG_TOOLS,
                *(f"start_{name}" for name in LONG_TOOLS)}
    assert expected <= set(tools)
    verify = tools["verify"]
    assert set(verify.inputSchema["required"]) == {"task", "candidate"}
    assert {"accepted", "failed_checks", "failures", "cases", "seconds"} <= set(verify.outputSchema["properties"])
    assert "job_id" in tools["start_optimize"].outputSchema["properties"]
    assert "roofline" in tools["describe_task"].outputSchema["properties"]


def test_describe_task_gives_knobs_baselines_and_roofline_bytes():
    async def body(session):
        return await session.call_tool("describe_task", {"task": "rmsnorm"})

    result = in_memory([REPO], body)
    assert not result.isError
    data = result.structuredContent
    assert data["knobs"] == {"tokens": 8192, "hidden": 4096}
    assert data["baselines"][:2] == ["eager", "native"]
    bf16 = next(r for r in data["roofline"] if r["dtype"] == "bfloat16" and r["knobs"] == data["knobs"])
    # x read once, weight read once, output written once, 2 bytes each
    assert bf16["bytes"] == (2 * 8192 * 4096 + 4096) * 2


def test_bad_inputs_are_one_sentence_tool_errors_and_the_server_lives_on(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)  # an LLM agent is refused without its key
    outside = tmp_path / "elsewhere.py"
    outside.write_text(GOOD.read_text())

    async def body(session):
        return [await session.call_tool("verify", {"task": "rmsnorm", "candidate": str(outside), "device": "cpu"}),
                await session.call_tool("verify", {"task": "no_such_task", "candidate": str(GOOD), "device": "cpu"}),
                await session.call_tool("verify", {"task": "rmsnorm", "candidate": str(REPO / "missing.py")}),
                await session.call_tool("start_optimize", {"task": "gelu", "agent": "anthropic:claude-x"}),
                await session.call_tool("job_result", {"job_id": "verify-99"}),
                await session.call_tool("read_run", {"out": str(REPO)}),
                await session.call_tool("list_tasks", {})]

    *errors, listed = in_memory([REPO], body)
    texts = [error_text(r) for r in errors]
    assert "outside the server's allowed roots" in texts[0]
    assert "neither a file nor a bundled task" in texts[1]
    assert "does not exist" in texts[2]
    assert "needs ANTHROPIC_API_KEY" in texts[3]
    assert "No job verify-99" in texts[4]
    assert "no summary.json" in texts[5]
    assert not listed.isError and "rmsnorm" in {t["name"] for t in listed.structuredContent["tasks"]}


def test_verify_accepts_a_correct_candidate_and_reports_progress_in_memory():
    heard = []

    async def progress(value, total, message):
        heard.append((value, message))

    async def body(session):
        return await session.call_tool("verify", {"task": "rmsnorm", "candidate": str(GOOD), "device": "cpu",
                                                  "shapes": 1}, progress_callback=progress)

    result = in_memory([REPO], body)
    assert not result.isError, result.content
    data = result.structuredContent
    assert data["accepted"] is True and data["failed_checks"] == [] and data["cases"] > 0
    assert heard and all(isinstance(m, str) and m for _, m in heard)
    assert [v for v, _ in heard] == sorted(v for v, _ in heard)  # progress only grows


def test_over_stdio_a_cheat_is_rejected_with_its_failure_names_and_paths_are_confined():
    async def body(session):
        tools = (await session.list_tools()).tools
        cheat = await session.call_tool("verify", {"task": "softmax", "candidate": str(CHEAT), "device": "cpu",
                                                   "shapes": 1})
        outside = await session.call_tool("read_run", {"out": "/etc"})
        return tools, cheat, outside

    tools, cheat, outside = over_stdio(body)
    assert {"verify", "start_verify", "job_status"} <= {t.name for t in tools}
    assert all(t.outputSchema for t in tools)
    assert not cheat.isError, cheat.content
    data = cheat.structuredContent
    assert data["accepted"] is False
    assert "constant_output" in data["failed_checks"]
    assert json.loads(cheat.content[0].text)["accepted"] is False  # the text block carries the same object
    assert "outside the server's allowed roots" in error_text(outside)


def test_start_optimize_runs_in_the_background_and_read_run_reads_its_directory(tmp_path):
    out = tmp_path / "run"

    async def body(session):
        started = await session.call_tool("start_optimize", {"task": "gelu", "device": "cpu", "max_minutes": 0.1,
                                                             "out": str(out)})
        job = started.structuredContent["job_id"]
        states, seen = [], set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = (await session.call_tool("job_status", {"job_id": job})).structuredContent
            states.append(status["state"])
            seen.update(status["progress"])
            if status["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.5)
        final = await session.call_tool("job_result", {"job_id": job})
        run = await session.call_tool("read_run", {"out": str(out)})
        return started, states, seen, final, run

    started, states, seen, final, run = in_memory([REPO, tmp_path], body)
    assert not started.isError and started.structuredContent["state"] in ("queued", "running")
    assert states[-1] == "done", states
    assert any("gelu" in line for line in seen), seen  # optimize's own report lines reach job_status
    result = final.structuredContent
    assert not final.isError and result["task"] == "gelu" and result["out"] == str(out.resolve())
    summary = run.structuredContent
    assert summary["summary"]["task"] == "gelu" and summary["candidates"]
    assert summary["verdict"] == result["verdict"]


def test_cli_without_the_extra_says_which_to_install():
    code = ("import sys; sys.modules['mcp'] = None; sys.modules['mcp.server'] = None; "
            "sys.modules['mcp.server.fastmcp'] = None; sys.argv = ['kernelwright', 'mcp']; "
            "from kernelwright.cli import app; app()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert "pip install 'kernelwright[mcp]'" in proc.stderr


def test_a_silent_job_still_reports_a_heartbeat_and_its_error_is_a_sentence(monkeypatch):
    from kernelwright import mcp_server
    from kernelwright.errors import UsageError

    monkeypatch.setattr(mcp_server, "HEARTBEAT_S", 0.2)
    told = []

    class Ctx:
        async def report_progress(self, progress, total=None, message=None):
            told.append(message)

        async def info(self, message):
            pass

    def silent(say):
        time.sleep(1.0)
        raise UsageError("Task file x.py does not define `Model`.")

    job = mcp_server.Jobs().start("verify", silent)
    with pytest.raises(UsageError, match="does not define `Model`"):
        asyncio.run(mcp_server.wait_for(job, Ctx()))
    assert told[0] == "verify: started" and told[-1].startswith("verify: failed in")
    assert len(told) >= 4 and all(m.startswith("verify: running") for m in told[1:-1])  # heartbeats between
    assert job.info().state == "failed"
