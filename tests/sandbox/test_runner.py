"""The process boundary, exercised directly: every way a child can die becomes a named reason."""

import json
import os
import time

import pytest

from kernelwright.sandbox.runner import Limits, run_worker
from kernelwright.sandbox.environment import scrubbed_env

CANDIDATE_HEADER = "import torch\nimport torch.nn as nn\n"


def run_candidate(tmp_path, body: str, *, timeout=60.0, memory_mb=8192):
    path = tmp_path / "candidate.py"
    path.write_text(CANDIDATE_HEADER + body)
    case = {"id": "c0", "seed": 1, "dtype": "float32", "init_inputs": [], "state_dict": {},
            "inputs": [__import__("torch").randn(4, 4)], "repeat": 1}
    return run_worker({"mode": "run", "candidate": str(path), "cases": [case]}, device="cpu",
                      limits=Limits(timeout_s=timeout, memory_mb=memory_mb))


MODEL = """
class ModelNew(nn.Module):
    def forward(self, x):
        {body}
        return x * 2
"""


def test_a_good_candidate_reports_ok(tmp_path):
    outcome = run_candidate(tmp_path, MODEL.format(body="pass"))
    assert outcome.ok, outcome.message
    assert outcome.report["cases"][0]["outputs"][0]["shape"] == [4, 4]


@pytest.mark.parametrize("body, reason", [
    ("import os; os.abort()", "abort"),
    ("import ctypes; ctypes.string_at(0)", "segfault"),
    ("import os; os.kill(os.getpid(), 9)", "killed"),
    ("import os; os._exit(3)", "no_report"),
])
def test_process_deaths_are_named(tmp_path, body, reason):
    outcome = run_candidate(tmp_path, MODEL.format(body=body))
    assert not outcome.ok
    assert outcome.reason == reason, outcome.message


def test_a_hang_is_killed_at_the_timeout(tmp_path):
    started = time.monotonic()
    outcome = run_candidate(tmp_path, MODEL.format(body="while True: pass"), timeout=8)
    assert outcome.reason == "timeout"
    assert time.monotonic() - started < 30


def test_a_memory_hog_is_killed_by_the_rss_watchdog(tmp_path):
    outcome = run_candidate(tmp_path, MODEL.format(body="hog = torch.ones(4 * 2**30 // 4); import time; time.sleep(30)"),
                            memory_mb=1500)
    assert outcome.reason == "out_of_memory"


def test_an_exception_is_reported_per_case_with_traceback(tmp_path):
    outcome = run_candidate(tmp_path, MODEL.format(body="raise ValueError('boom')"))
    assert outcome.ok  # the process itself is fine; the case failed
    error = outcome.report["cases"][0]["error"]
    assert error["reason"] == "exception" and "boom" in error["message"]
    assert "ValueError" in error["traceback"]


def test_printing_a_fake_report_to_stdout_changes_nothing(tmp_path):
    fake = json.dumps({"status": "ok", "cases": [], "nonce": "guess"})
    outcome = run_candidate(tmp_path, MODEL.format(body=f"print({fake!r}); raise ValueError('real')"))
    assert outcome.report["cases"][0]["error"]["reason"] == "exception"


def test_writing_the_report_channel_is_detected(tmp_path):
    body = ("import os, sys; os.write(int(sys.argv[3]), b'{\"status\": \"ok\", \"cases\": []}\\n')")
    outcome = run_candidate(tmp_path, MODEL.format(body=body))
    assert outcome.reason == "report_forged"


def test_secrets_in_the_parent_never_reach_the_candidate(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_parent_secret")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    body = ("import os, json; raise RuntimeError(json.dumps({k: v for k, v in os.environ.items() "
            "if 'secret' in v or k in ('HOME', 'TRITON_INTERPRET', 'TRITON_CACHE_DIR', 'CUDA_VISIBLE_DEVICES')}))")
    outcome = run_candidate(tmp_path, MODEL.format(body=body))
    message = outcome.report["cases"][0]["error"]["message"]
    env = json.loads(message.split("RuntimeError: ", 1)[1])
    assert "sk-parent-secret" not in message and "hf_parent_secret" not in message
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["TRITON_INTERPRET"] == "1"
    assert env["TRITON_CACHE_DIR"].startswith(env["HOME"])


def test_scrubbed_env_is_an_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("SOMETHING_HARMLESS", "1")
    monkeypatch.setenv("PATH_TOKEN", "x")
    env = scrubbed_env(tmp_path, interpret=False)
    assert "SOMETHING_HARMLESS" not in env and "PATH_TOKEN" not in env
    assert env["HOME"] == str(tmp_path) and "TRITON_INTERPRET" not in env


def test_network_isolation_is_reported(tmp_path):
    outcome = run_candidate(tmp_path, MODEL.format(body="pass"))
    assert outcome.isolation_note
    if outcome.network_isolated:
        probe = run_candidate(tmp_path, MODEL.format(
            body="import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"))
        assert probe.report["cases"][0]["error"]["reason"] == "exception"


@pytest.fixture
def short_deadlines(monkeypatch):
    from kernelwright.sandbox import deadline

    monkeypatch.setattr(deadline, "FLOOR_S", {"cpu": 2.0, "cuda": 2.0})
    monkeypatch.setattr(deadline, "FIRST_ALLOWANCE_S", {"cpu": 1.0, "cuda": 1.0})
    monkeypatch.setattr(deadline, "HEARTBEAT_S", 1.0)
    monkeypatch.setattr(deadline, "load_stretch", lambda device: 1.0)


def test_a_hung_call_is_killed_at_its_deadline_long_before_the_process_limit(tmp_path, short_deadlines):
    path = tmp_path / "candidate.py"
    path.write_text(CANDIDATE_HEADER + MODEL.format(body="while True: pass"))
    case = {"id": "c0", "seed": 1, "dtype": "float32", "init_inputs": [], "state_dict": {},
            "inputs": [__import__("torch").randn(4, 4)], "repeat": 1}
    lines = []
    started = time.monotonic()
    outcome = run_worker({"mode": "run", "candidate": str(path), "cases": [case]}, device="cpu",
                         limits=Limits(timeout_s=120), progress=lines.append)
    assert outcome.reason == "timeout" and outcome.extra["timeout_limit"] == "call"  # a hang: a verdict
    assert "case c0, call 1 of ModelNew did not return within 3 s" in outcome.message
    assert time.monotonic() - started < 60
    assert any(line.startswith("verify: case 1 of 1 (c0), ") for line in lines), lines


def test_time_spent_in_a_compiler_process_is_not_a_hang(tmp_path, short_deadlines):
    # a first call that builds something for 5 s in a child process, as load_inline or ptxas would
    outcome = run_candidate(tmp_path, MODEL.format(body="import subprocess; subprocess.run(['sleep', '5'])"),
                            timeout=120)
    assert outcome.ok, outcome.message
    assert "error" not in outcome.report["cases"][0]
    assert outcome.extra["calls"] == 1


GB = 2**30


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A fake 100 GiB machine whose /dev/shm is a folder of tmp_path with 40 GiB free."""
    from kernelwright.sandbox import runner

    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       {100 * GB // 1024} kB\nMemFree:        1024 kB\n")
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(runner, "MEMINFO", meminfo)
    monkeypatch.setattr(runner, "SHM_DIR", shm)
    free = {"bytes": 40 * GB}
    monkeypatch.setattr(runner.os, "statvfs", lambda path: os.statvfs_result(
        (4096, 4096, 0, 0, free["bytes"] // 4096, 0, 0, 0, 0, 255)))
    return runner, shm, free


def test_the_host_memory_limit_grows_with_the_job_up_to_a_share_of_the_machine(machine):
    runner, _, _ = machine
    limits = Limits(memory_mb=32768)
    assert runner.memory_limit_mb(limits, 1 * GB) == 32768  # small job: the configured limit
    assert runner.memory_limit_mb(limits, 7.5 * GB) == 6 * 7.5 * 1024  # 7.5 GB task: 45 GB, not 32
    assert runner.memory_limit_mb(limits, 50 * GB) == int(0.85 * 100 * 1024)  # capped at 85 % of MemTotal
    assert runner.memory_limit_mb(Limits(memory_mb=1500), 0) == 1500


def test_big_jobs_get_their_scratch_in_ram_when_it_has_room(machine):
    runner, shm, free = machine
    assert runner.scratch_root_for(10 * 2**20) is None  # small: the default temp dir
    assert runner.scratch_root_for(8 * GB) == shm  # 3 x 8 + 1 < 40
    assert runner.scratch_root_for(13 * GB) is None  # 3 x 13 + 1 = 40: not more than the free space
    free["bytes"] = 0
    assert runner.scratch_root_for(1 * GB) is None
    runner.SHM_DIR = shm / "missing"
    assert runner.scratch_root_for(1 * GB) is None


def test_a_big_job_runs_with_its_scaled_limit_and_ram_scratch_which_is_removed(tmp_path, machine):
    runner, shm, _ = machine
    path = tmp_path / "candidate.py"
    path.write_text(CANDIDATE_HEADER + MODEL.format(body="pass"))
    case = {"id": "c0", "seed": 1, "dtype": "float32", "init_inputs": [], "state_dict": {},
            "inputs": [__import__("torch").randn(4, 4)], "repeat": 1}
    outcome = run_worker({"mode": "run", "candidate": str(path), "cases": [case]}, device="cpu",
                         limits=Limits(timeout_s=120), job_bytes=8 * GB)
    assert outcome.ok, outcome.message
    assert outcome.extra["memory_limit_mb"] == 6 * 8 * 1024
    assert outcome.extra["scratch"].startswith(str(shm))
    runner.load_result(outcome)
    assert not list(shm.iterdir())


def test_a_job_counts_its_own_tensors():
    import torch

    from kernelwright.sandbox.runner import job_tensor_bytes

    job = {"cases": [{"inputs": [torch.zeros(10), 3], "variants": [[torch.zeros(2, 5, dtype=torch.float64)]],
                      "state_dict": {"w": torch.zeros(4, dtype=torch.int8)}}], "mode": "run"}
    assert job_tensor_bytes(job) == 40 + 80 + 4


def test_the_poison_pool_stays_within_the_memory_target_for_large_inputs():
    from kernelwright.sandbox.worker import poison_pool_bytes

    small, large = 100 << 20, 8 << 30
    assert poison_pool_bytes(small) >= 4 * small  # room for outputs and workspace on a small case
    # inputs + their clones + the pool: at most 3x the inputs (plus the 64-MB slack) on a large case, which
    # leaves one input's worth under the 4x target for what else is live during a call
    assert 2 * large + poison_pool_bytes(large) <= 3 * large + (64 << 20)
    sizes = [n << 20 for n in range(1, 4096, 37)]  # a larger input never gets a smaller pool
    assert all(poison_pool_bytes(a) <= poison_pool_bytes(b) for a, b in zip(sizes, sizes[1:]))


def test_the_scratch_is_removed_when_the_run_ends_by_an_exception(tmp_path, monkeypatch):
    # a signal (SystemExit from the reaper's handler) or any error while the worker runs: in /dev/shm a
    # leftover job.pt would hold gigabytes of RAM until reboot
    from kernelwright.sandbox import runner

    def interrupted(proc, *args, **kwargs):
        raise SystemExit(143)

    monkeypatch.setattr(runner, "_supervise", interrupted)
    path = tmp_path / "candidate.py"
    path.write_text(CANDIDATE_HEADER + MODEL.format(body="return x"))
    with pytest.raises(SystemExit):
        run_worker({"mode": "run", "candidate": str(path), "cases": []}, device="cpu", scratch_root=tmp_path)
    assert not list(tmp_path.glob("kw-worker-*"))


def test_inputs_the_worker_draws_leave_its_random_state_as_it_was():
    # a candidate drawing random numbers in forward must still differ between its repeated calls
    import torch

    from kernelwright.sandbox.worker import _drawer
    from kernelwright.tasks.task import load_task

    spec = dict(case_id="c0", label="benchmark", knobs={"tokens": 4, "hidden": 8}, dtype="float32",
                distribution="normal", seed=3, model_seed=3, init_override=None)
    draw = _drawer({"task": str(load_task("rmsnorm").path), "cases": [{"inputs": spec}]}, "cpu")
    first = draw(spec)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = draw(spec)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(first[0], again[0])  # the same input set from the same arguments


def test_a_deadline_shortens_the_whole_process_limit_of_a_worker_started_late(tmp_path):
    assert Limits(timeout_s=60).timeout_from(time.monotonic()) == 60
    now = time.monotonic()
    assert Limits(timeout_s=60, deadline=now + 5).timeout_from(now) == pytest.approx(5)
    assert Limits(timeout_s=60, deadline=now - 1).timeout_from(now) == 0.0
    path = tmp_path / "candidate.py"
    path.write_text(CANDIDATE_HEADER + MODEL.format(body="import time; time.sleep(30)"))
    case = {"id": "c0", "seed": 1, "dtype": "float32", "init_inputs": [], "state_dict": {},
            "inputs": [__import__("torch").randn(4, 4)], "repeat": 1}
    started = time.monotonic()
    outcome = run_worker({"mode": "run", "candidate": str(path), "cases": [case]}, device="cpu",
                         limits=Limits(timeout_s=120, deadline=started + 4))
    assert outcome.reason == "timeout" and outcome.extra["timeout_limit"] == "process"
    assert time.monotonic() - started < 20


def test_mutation_checks_compare_large_tensors_slice_by_slice_and_see_every_difference(monkeypatch):
    import torch

    from kernelwright.sandbox import worker

    monkeypatch.setattr(worker, "COMPARE_CHUNK", 7)
    a = torch.arange(50, dtype=torch.float32)
    a[[3, 20, 49]] = float("nan")
    assert worker._bitwise_equal(a, a.clone())
    for where in (0, 20, 49):  # the first slice, a NaN in a middle slice, the last (short) slice
        b = a.clone()
        b[where] = 1.5
        assert not worker._bitwise_equal(a, b), where
    assert not worker._bitwise_equal(a, a[:49].clone())
    strided = torch.arange(100, dtype=torch.float32)[::2]  # not contiguous: compared whole
    assert worker._bitwise_equal(strided, strided.clone()) and not worker._bitwise_equal(strided, strided + 1)
