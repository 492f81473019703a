"""A Ray cluster of two nodes on this machine runs an eval; killing the second node mid-unit loses nothing."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from kernelwright.evals import run_eval
from kernelwright.executor.base import Work
from kernelwright.executor.ray_backend import from_reply, run_remote, to_payload
from kernelwright.tasks.task import SUITE_DIR

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed: pip install 'kernelwright[ray]' to run it")
HERE = Path(__file__).resolve().parent

GOOD = Path(__file__).resolve().parents[2] / "examples" / "gelu.py"
# Logs which node runs it (KW_TEST_NODE, inherited from `ray start`), works a few seconds, leaves the kernel in run 1.
AGENT = """import os, pathlib, shutil, sys, time
ws, log = pathlib.Path(sys.argv[1]), sys.argv[2]
def note(what):
    with open(log, "a") as f:
        f.write(f"{what} {os.environ.get('KW_TEST_NODE', '?')} {ws.name} {time.time():.2f} {os.getppid()}\\n")
note("start")
time.sleep(8 if os.environ.get("KW_TEST_NODE") == "second" else 2)  # the second node's is killed while it waits
if ws.name.endswith("--r1"):
    shutil.copyfile(sys.argv[3], ws / "candidate.py")
note("end")
"""
RUNS = 3
RAY_CLI = str(next((p for p in (Path(sys.executable).parent / "ray",) if p.is_file()), "ray"))  # this venv's first
# a dead node is noticed in about a second, not Ray's default 15 or so
FAST_HEALTH_CHECKS = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "500",
                      "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args: list[str], name: str, folder: Path) -> subprocess.Popen:
    # its own process group: stopped with killpg at the end, never with a machine-wide `ray stop`
    env = {**os.environ, "KW_TEST_NODE": name, "RAY_USAGE_STATS_ENABLED": "0", **FAST_HEALTH_CHECKS}
    with open(folder / f"{name}.log", "wb") as log:
        return subprocess.Popen([RAY_CLI, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 "--num-gpus=0", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def session_pids(sid: int, needle: str = "") -> list[int]:
    """The processes of a node started with `ray start` in session ``sid`` (Ray workers take their own groups)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getsid(int(entry)) == sid:
                if needle in Path(f"/proc/{entry}/cmdline").read_text():
                    found.append(int(entry))
        except (OSError, ProcessLookupError):
            continue
    return found


def kill_session(sid: int) -> None:
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(condition, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.is_file() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def test_a_task_gets_its_input_files_as_bytes_and_its_artifacts_and_paths_come_back_as_the_drivers(
        tmp_path, monkeypatch):
    # what a Ray task runs on a node, run here: no cluster needed
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    task, extra = tmp_path / "task.py", tmp_path / "data.txt"
    task.write_text("TASK ")
    extra.write_text("EXTRA")
    work = Work("unit-1", "executor_helpers:read_inputs", {"task": str(task), "extras": [str(extra)]},
                tmp_path / "out" / "runs" / "unit-1", files=("task", "extras"))
    payload = to_payload(work)
    assert str(tmp_path) not in str(payload["kwargs"])  # the node gets bytes, not this machine's paths
    reply = run_remote(payload)
    assert str(tmp_path) not in reply["out"]  # it ran in the node's temporary folder
    done = from_reply(work, reply, 1.0)
    assert done.ok, done.message
    assert done.result == {"task": str(task), "extras": [str(extra)], "out": str(work.out),
                           "artifact": str(work.out / "seen.txt")}
    assert (work.out / "seen.txt").read_text() == "TASK EXTRA"


@needs_ray
def test_a_two_node_ray_eval_loses_no_unit_when_the_second_node_dies_mid_run(tmp_path, monkeypatch):
    # no token authentication, and a home of its own: Ray 2.5x turns token auth on by itself when it finds a
    # ~/.ray/auth_token (a local `ray.init()` leaves one), and the nodes and the driver then disagree
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = Path(tempfile.mkdtemp(prefix="kwray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = [start_node(["--head", f"--port={port}", f"--temp-dir={folder}", "--include-dashboard=false"], "head",
                        folder)]
    try:
        wait_for(lambda: os.path.exists(folder / "ray_current_cluster"), 120, "the head", folder / "head.log")
        nodes.append(start_node([f"--address={address}"], "second", folder))
        ray.init(address=address, log_to_driver=False)
        wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, 120, "two live nodes", folder / "second.log")
        ray.shutdown()
        run_and_kill_second(tmp_path, address, nodes[1])
    finally:
        for node in nodes:
            kill_session(node.pid)
            node.wait()
        shutil.rmtree(folder, ignore_errors=True)


def run_and_kill_second(tmp_path: Path, address: str, second: subprocess.Popen) -> None:
    suite, log, stub = tmp_path / "suite", tmp_path / "agent.log", tmp_path / "agent.py"
    suite.mkdir()
    shutil.copyfile(SUITE_DIR / "gelu.py", suite / "gelu.py")
    stub.write_text(AGENT)
    log.touch()
    agent = f"cmd:{sys.executable} {stub} {{workspace}} {log} {GOOD}"
    killed = []

    def kill_second_when_busy():
        wait_for(lambda: "start second" in log.read_text(), 90, "a unit on the second node")
        killed.extend(session_pids(second.pid, "raylet/raylet"))
        kill_session(second.pid)  # the node dies: its raylet, its workers, `ray start`

    killer = threading.Thread(target=kill_second_when_busy, daemon=True)
    killer.start()
    results = run_eval(str(suite), [agent], runs=RUNS, out=tmp_path / "out", device="cpu", minutes=2,
                       executor=f"ray:{address}")
    killer.join(timeout=1)
    assert killed, "the second node's raylet was never found and killed"
    lines = log.read_text().splitlines()
    interrupted = [line.split()[2] for line in lines if line.startswith("start second")]
    # killed mid-unit, the external agent too (its unit process kills its group when the Ray worker is gone)
    assert interrupted and not any(line.startswith("end second") for line in lines)
    units = results["units"]
    assert sorted(u["run"] for u in units) == list(range(1, RUNS + 1))  # none lost, none duplicated
    assert all(u["status"] == "done" for u in units), [u["note"] for u in units]
    assert [u["correct"] for u in sorted(units, key=lambda u: u["run"])] == [True, False, False]
    for name in interrupted:  # the interrupted unit was retried on the head, to the end, once
        assert ["end", "head", name] in [line.split()[:3] for line in lines]
    ends = [line.split()[2] for line in lines if line.startswith("end ")]
    assert len(ends) == len(set(ends)) == RUNS  # every unit finished exactly once
    stored = sorted(p.name for p in (tmp_path / "out" / "units").glob("*.json"))
    assert len(stored) == RUNS
    for unit in units:  # the artifacts came back to the driver's run directory
        assert Path(unit["out"]).parent == tmp_path / "out" / "runs" and (Path(unit["out"]) / "task.py").is_file()
    assert (Path(units[0]["out"]) / "candidate.py").is_file()
