import pytest

from kernelwright.errors import UsageError
from kernelwright.tasks import load_task
from kernelwright.verify import memory
from kernelwright.verify.inputs import build_case


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
