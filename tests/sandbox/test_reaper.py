"""No orphans: a kernelwright process that is interrupted or killed takes its workers with it.

Workers are found by their command line (``kernelwright.sandbox.worker`` and a scratch directory under
this test's own TMPDIR), so tests of other people running at the same time are never touched.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernelwright.sandbox import reaper
from kernelwright.sandbox.runner import run_worker

ROOT = Path(__file__).resolve().parents[2]
HANG = ROOT / "tests" / "corpus" / "crash_hangs.py"


def workers_under(root: Path) -> list[int]:
    """Live (not zombie) worker processes whose scratch directory is under ``root``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"kernelwright.sandbox.worker" in argv and any(a.startswith(bytes(root)) for a in argv):
            found.append(int(entry))
    return found


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    log = open(tmp_path / "kernelwright.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kernelwright", *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(scratch_root)})
    return proc, scratch_root


def wait_for_worker(proc: subprocess.Popen, scratch_root: Path, tmp_path: Path, timeout: float = 120) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if workers_under(scratch_root):
            time.sleep(1.0)  # let it get into the candidate's call
            assert workers_under(scratch_root), "the worker ended before the signal was sent"
            return
        if proc.poll() is not None:
            pytest.fail("kernelwright exited before starting a worker:\n" + (tmp_path / "kernelwright.log").read_text())
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no worker started within the test's patience")


def assert_no_worker_within(scratch_root: Path, seconds: float) -> None:
    until = time.monotonic() + seconds
    while workers_under(scratch_root):
        if time.monotonic() > until:
            pids = workers_under(scratch_root)
            for pid in pids:  # do not leave them spinning after the test
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"worker(s) {pids} still alive {seconds:g} s after their parent ended")
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_verify_ends_its_hanging_worker(tmp_path, signum):
    proc, scratch_root = start(tmp_path, "verify", "rmsnorm", str(HANG), "--device", "cpu", "--shapes", "1")
    wait_for_worker(proc, scratch_root, tmp_path)
    sent = time.monotonic()
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 128 + signum  # the signal path, not a verdict (1) or a crash
    assert_no_worker_within(scratch_root, 5 - (time.monotonic() - sent))


def test_sigterm_to_optimize_ends_its_worker(tmp_path):
    proc, scratch_root = start(tmp_path, "optimize", "rmsnorm", "--device", "cpu", "--out", str(tmp_path / "run"))
    wait_for_worker(proc, scratch_root, tmp_path)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert_no_worker_within(scratch_root, 5 - (time.monotonic() - sent))


def test_a_worker_whose_parent_is_killed_exits_by_itself(tmp_path):
    proc, scratch_root = start(tmp_path, "verify", "rmsnorm", str(HANG), "--device", "cpu", "--shapes", "1")
    wait_for_worker(proc, scratch_root, tmp_path)
    proc.kill()  # SIGKILL: no handler, no finally
    proc.wait()
    assert_no_worker_within(scratch_root, 5)


def child_script(body: str) -> list[str]:
    code = f"import os, subprocess, sys, time\nsys.path.insert(0, {str(ROOT / 'src')!r})\n" + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_dead(pid: int, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < until:
        time.sleep(0.05)
    return not alive(pid)


def test_pdeathsig_alone_kills_a_child_whose_parent_dies():
    middle = subprocess.Popen(child_script("""
        from kernelwright.sandbox.reaper import die_with_parent
        child = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent(os.getpid()), start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
    """), stdout=subprocess.PIPE, text=True)
    grandchild = int(middle.stdout.readline())
    assert alive(grandchild)
    middle.kill()
    middle.wait()
    assert wait_dead(grandchild, 3), "the grandchild outlived its parent: PR_SET_PDEATHSIG was not set"


def test_the_liveness_pipe_alone_ends_the_worker_group():
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(child_script(f"""
        from kernelwright.sandbox.reaper import watch_parent
        watch_parent({read_fd})
        time.sleep(60)
    """), pass_fds=(read_fd,), start_new_session=True)  # its own group, as every worker: it kills that group
    os.close(read_fd)
    time.sleep(0.5)
    assert child.poll() is None
    os.close(write_fd)  # as if this process had died
    assert child.wait(timeout=5) == -signal.SIGKILL


def test_no_worker_starts_once_kernelwright_is_stopping(monkeypatch):
    monkeypatch.setattr(reaper, "_stopping", 15)
    with pytest.raises(reaper.Interrupted):
        run_worker({"mode": "run", "cases": []}, device="cpu")
    assert not issubclass(reaper.Interrupted, Exception)  # an `except Exception` does not record it as a verdict


def test_a_terminating_signal_kills_every_registered_group_and_exits_128_plus_it(monkeypatch):
    monkeypatch.setattr(reaper, "_stopping", None)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    reaper.register(child.pid)
    try:
        with pytest.raises(SystemExit) as exited:
            reaper._on_signal(signal.SIGTERM, None)
        assert exited.value.code == 128 + signal.SIGTERM
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert reaper.stopping() == signal.SIGTERM
    finally:
        reaper.unregister(child.pid)
        child.kill()
