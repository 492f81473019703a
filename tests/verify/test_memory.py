from pathlib import Path

import pytest

from kernelwright.errors import UsageError
from kernelwright.tasks import load_task
from kernelwright.verify import memory
from kernelwright.verify.inputs import build_case

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rmsnorm.py"


def _case(task="rmsnorm", **knobs):
    return build_case(load_task(task).load(), case_id="c", label="x", knobs=knobs, dtype="float32",
                      distribution="normal", seed=1)


def test_a_task_that_cannot_fit_is_refused_in_one_sentence(monkeypatch):
    monkeypatch.setattr(memory, "free_device_bytes", lambda device: 40e9)
    task_bytes = 15e9  # 36_RMSNorm_: 7.5 GB in, 7.5 GB out
    with pytest.raises(UsageError) as raised:
        memory.check_fits("36_RMSNorm_", task_bytes, "cuda:0")
    assert str(raised.value) == (
        "Task 36_RMSNorm_ needs 60.0 GB of GPU memory at its own shape (inputs + outputs 15.0 GB, verification about "
        "4x); this GPU has 40.0 GB free: run it with smaller knobs or on a larger GPU.")
    memory.check_fits("36_RMSNorm_", task_bytes / 2, "cuda:0")  # 30 GB fits in 40
    memory.check_fits("36_RMSNorm_", task_bytes, "cpu")  # nothing to refuse on the host


def test_task_bytes_are_inputs_plus_outputs_found_without_running_the_model():
    case = _case(tokens=33, hidden=100)
    assert memory.output_bytes(case) == 33 * 100 * 4
    assert memory.case_bytes(case) == 2 * 33 * 100 * 4
    assert memory.largest([_case(tokens=2, hidden=8), case]) is case


def test_peaks_are_not_measured_on_the_cpu():
    memory.reset_peak("cpu")
    assert memory.peak_bytes("cpu") is None


def _shared_gpu(monkeypatch, outcomes):
    """verify() on a pretend GPU whose attempts end as ``outcomes`` say, in order; the lock modes it used."""
    from contextlib import contextmanager

    from kernelwright.verify import verifier

    modes = []

    @contextmanager
    def lock(device, *, shared=False, deadline=None):
        modes.append("shared" if shared else "exclusive")
        yield 0.0

    def attempt(result, *args, **kwargs):
        outcome = outcomes[len(modes) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        if outcome:
            result.fail("out_of_memory", "the candidate ran out of device memory: OutOfMemoryError: 16 GiB")
        return result

    monkeypatch.setattr(verifier, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(verifier, "describe", lambda device: {})
    monkeypatch.setattr(verifier, "timing_lock", lock)
    monkeypatch.setattr(verifier, "_verify_cases", attempt)
    monkeypatch.setattr(memory, "reset_peak", lambda device: None)
    return modes


def test_an_out_of_memory_on_a_shared_gpu_is_verified_again_with_the_gpu_to_itself(monkeypatch):
    from kernelwright.verify import verify

    modes = _shared_gpu(monkeypatch, [True, False])  # other processes held the memory; alone it fits
    result = verify("rmsnorm", EXAMPLE, device="cuda")
    assert modes == ["shared", "exclusive"]
    assert result.accepted and any("with the GPU to itself" in n for n in result.notes)

    modes = _shared_gpu(monkeypatch, [True, True])  # out of memory alone too: the candidate's own doing
    result = verify("rmsnorm", EXAMPLE, device="cuda")
    assert modes == ["shared", "exclusive"]
    assert [f["check"] for f in result.failures] == ["out_of_memory"]


def test_a_task_that_does_not_fit_beside_others_waits_for_the_gpu_and_is_refused_only_alone(monkeypatch):
    from kernelwright.verify import verify

    refusal = memory.DoesNotFit("Task rmsnorm needs 60.0 GB of GPU memory at its own shape ...")
    modes = _shared_gpu(monkeypatch, [refusal, False])
    assert verify("rmsnorm", EXAMPLE, device="cuda").accepted
    assert modes == ["shared", "exclusive"]
    modes = _shared_gpu(monkeypatch, [refusal, refusal])
    with pytest.raises(UsageError, match="needs 60.0 GB"):
        verify("rmsnorm", EXAMPLE, device="cuda")
    assert modes == ["shared", "exclusive"]
