import time

import torch

from kernelwright.verify.inputs import redraw


def test_special_inputs_hold_nan_and_both_infinities_even_when_tiny():
    for shape in [(1,), (1, 3), (2, 5), (64, 64)]:
        x = redraw(torch.zeros(shape), "special", torch.Generator().manual_seed(0))
        assert x.shape == shape and torch.isnan(x).any()
        if x.numel() >= 3:
            assert (x == float("inf")).any() and (x == float("-inf")).any()


def _case(task="rmsnorm", dtype="float32", **knobs):
    from kernelwright.tasks import load_task
    from kernelwright.verify.inputs import build_case

    return build_case(load_task(task).load(), case_id="c", label="x", knobs=knobs, dtype=dtype,
                      distribution="normal", seed=7)


def test_a_reference_computed_in_slices_of_rows_equals_the_whole_one(monkeypatch):
    from kernelwright.verify import inputs

    case = _case(dtype="bfloat16", tokens=37, hidden=16)
    whole_ref, whole_eager = inputs.reference_outputs(case, "cpu")
    calls = []
    real_run = inputs._run
    monkeypatch.setattr(inputs, "_run", lambda model, xs, device: calls.append(xs[0].shape[0]) or real_run(model, xs, device))
    monkeypatch.setattr(inputs, "SLICE_BYTES", 8 * 16 * 5)  # five float64 rows per slice
    ref, eager = inputs.reference_outputs(case, "cpu", on_host=True)
    assert calls[:3] == [4, 2, 2]  # the independence probe: four rows, then their halves
    assert calls[3:] == [5] * 7 + [2] + [5] * 7 + [2]  # the reference, then the Model in bf16, in slices
    assert ref[0].dtype == torch.float64 and eager[0].dtype == torch.bfloat16
    assert torch.equal(ref[0], whole_ref[0]) and torch.equal(eager[0], whole_eager[0])


def test_an_op_that_mixes_rows_is_never_sliced():
    from kernelwright.verify import inputs

    class Mixed(torch.nn.Module):  # every row depends on every other
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x - x.mean(0))

    case = _case(tokens=6, hidden=8)
    case.model = Mixed(case.model)
    assert not inputs.rows_independent(case, "cpu")
    ref, _ = inputs.reference_outputs(case, "cpu", on_host=True)
    assert torch.allclose(ref[0], inputs.reference_outputs(case, "cpu")[0][0], rtol=1e-12, atol=0)
    assert inputs.rows_independent(_case(tokens=6, hidden=8), "cpu")


def test_one_eager_call_is_timed_and_none_where_the_model_raises():
    from kernelwright.verify.inputs import time_eager

    case = _case(tokens=3, hidden=8)
    assert 0 < time_eager(case, "cpu") < 5
    assert case.job(repeat=1)["eager_s"] is None  # set by the verifier, per shape
    case.model.forward = lambda x: x.view(7, 7)
    assert time_eager(case, "cpu") is None


def test_a_streamed_reference_is_the_whole_one_slice_by_slice(monkeypatch):
    from kernelwright.verify import inputs

    case = _case(dtype="bfloat16", tokens=37, hidden=16)
    whole_ref, whole_eager = inputs.reference_outputs(case, "cpu")
    shaped = inputs.outline(case, "cpu")
    assert [(list(o.shape), o.dtype, o.device.type) for o in shaped] == [([37, 16], torch.bfloat16, "meta")]
    monkeypatch.setattr(inputs, "STREAM_SLICE_BYTES", 8 * (16 + 16) * 5)  # five rows of inputs and outputs
    walk = inputs.row_slices(case, "cpu", shaped)
    for _ in range(2):  # every call walks again from the first row
        sliced = list(walk())
        assert [(a, b) for a, b, _, _ in sliced] == [(a, min(37, a + 5)) for a in range(0, 37, 5)]
        assert torch.equal(torch.cat([refs[0] for _, _, refs, _ in sliced]), whole_ref[0])
        assert torch.equal(torch.cat([eagers[0] for _, _, _, eagers in sliced]), whole_eager[0])
        assert sliced[0][2][0].dtype == torch.float64 and sliced[0][3][0].dtype == torch.bfloat16


def test_a_model_raising_on_a_later_slice_raises_model_raised(monkeypatch):
    import pytest

    from kernelwright.verify import inputs

    case = _case(tokens=12, hidden=8)
    forward = case.model.forward
    case.model.forward = lambda x: forward(x) if x.shape[0] > 2 else x.view(7, 7)  # the last slice has 2 rows
    monkeypatch.setattr(inputs, "STREAM_SLICE_BYTES", 8 * 16 * 5)
    walk = inputs.row_slices(case, "cpu", inputs.outline(case, "cpu"))
    with pytest.raises(inputs.ModelRaised) as raised:
        list(walk())
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_on_cuda_an_untimed_first_call_pays_the_initialisation(monkeypatch):
    from kernelwright.verify import inputs

    # a CPU stand-in for a GPU: moves are no-ops; the Model's first call is slow as CUDA/cuBLAS setup is
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(inputs, "_release", lambda device: None)
    case = _case(tokens=3, hidden=8)
    calls = []
    forward = case.model.forward

    def slow_first(x):
        calls.append(x)
        time.sleep(0.5 if len(calls) == 1 else 0)
        return forward(x)

    case.model.forward = slow_first
    assert inputs.time_eager(case, "cuda") < 0.25 and len(calls) == 2
    calls.clear()
    assert inputs.time_eager(case, "cpu") >= 0.5 and len(calls) == 1  # nothing to initialise: one call
