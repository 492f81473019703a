import json

import pytest

from conftest import EXAMPLES, FIXTURES
from kernelwright.errors import UsageError
from kernelwright.tasks import load_task
from kernelwright.verify import SCHEMA, verify
from kernelwright.verify.verifier import plan_cases


def test_accepted_result_has_the_documented_schema():
    result = verify("rmsnorm", EXAMPLES / "rmsnorm.py", device="cpu", seed=3)
    data = json.loads(json.dumps(result.as_json()))
    assert data["schema"] == SCHEMA and data["accepted"] is True and data["failures"] == []
    assert {"task", "task_path", "candidate", "device", "checks", "cases", "environment", "seconds"} <= set(data)
    assert data["environment"]["interpreter"] is True and data["environment"]["torch"]
    assert data["checks"]["values"]["failed"] == 0 and data["checks"]["values"]["passed"] == len(data["cases"])
    case = data["cases"][0]
    assert {"knobs", "dtype", "distribution", "seed", "passed", "outputs"} <= set(case)
    assert case["outputs"][0]["rel_err"] <= case["outputs"][0]["tolerance"]["norm"]
    # where the time went: each phase measured, together within the whole
    assert set(data["phases"]) == {"plan", "worker", "judge"} and min(data["phases"].values()) > 0
    assert sum(data["phases"].values()) <= data["seconds"] + 0.01


def test_a_worker_that_fails_has_no_judge_phase():
    result = verify("rmsnorm", FIXTURES.parent / "corpus" / "crash_missing_modelnew.py", device="cpu", shapes=1)
    assert not result.accepted and set(result.as_json()["phases"]) == {"plan", "worker"}


def test_cases_cover_every_dtype_and_signed_inputs_never_only_the_benchmark_shape():
    task = load_task("rmsnorm")
    cases = plan_cases(task, "cpu", seed=11)
    assert {c.dtype for c in cases} == {"bfloat16", "float16", "float32"}
    for dtype in task.dtype_names:
        dists = {c.distribution for c in cases if c.dtype == dtype}
        assert "task" in dists and {"normal", "uniform", "heavy_tailed"} & dists
    assert all(c.knobs != task.knobs for c in cases)
    assert len({tuple(c.knobs.values()) for c in cases}) >= 8
    assert len({c.seed for c in cases}) == len(cases)


def test_seeds_are_fresh_for_every_call():
    task = load_task("rmsnorm")
    assert {c.seed for c in plan_cases(task, "cpu")} != {c.seed for c in plan_cases(task, "cpu")}


def test_kernelbench_task_with_huge_knobs_is_verified_on_shrunk_shapes():
    result = verify(FIXTURES / "kernelbench_softmax_huge.py", FIXTURES / "kernelbench_softmax_triton.py", device="cpu")
    assert result.accepted, result.failures[:2]
    assert all(c["knobs"]["batch_size"] * c["knobs"]["dim"] <= 2**14 for c in result.cases)
    assert result.seconds < 60


def test_a_rejection_carries_a_minimal_reproducer():
    result = verify("rmsnorm", FIXTURES.parent / "corpus" / "bug_wrong_epsilon.py", device="cpu")
    mismatch = next(f for f in result.failures if f["check"] == "mismatch")
    assert {"knobs", "dtype", "distribution", "seed"} <= set(mismatch["case"])
    assert mismatch["worst_index"] and "rel_err" in mismatch and "expected" in mismatch


def test_missing_candidate_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        verify("rmsnorm", tmp_path / "nope.py", device="cpu")



def test_shapes_where_the_task_model_itself_raises_are_skipped_not_failed():
    result = verify(FIXTURES / "silu_two_rows_or_more.py", EXAMPLES / "silu.py", device="cpu", seed=3)
    skipped = [c for c in result.cases if c.get("skipped")]
    assert result.accepted, result.failures[:2]
    assert skipped and all(c["knobs"]["tokens"] == 1 for c in skipped)  # the tiny and one-row shapes
    assert len(result.cases) - len(skipped) >= 8


def test_a_task_whose_model_raises_at_every_shape_is_a_usage_error(tmp_path):
    task = tmp_path / "silu_never.py"
    task.write_text((FIXTURES / "silu_two_rows_or_more.py").read_text().replace("x.shape[0] == 1", "True"))
    with pytest.raises(UsageError, match="its own Model raises at every drawn shape"):
        verify(task, EXAMPLES / "silu.py", device="cpu", seed=3)


@pytest.fixture
def judged_both_ways(monkeypatch):
    """Every case judged as a benchmark-size one, twice, on the same outputs of one worker run: as before
    (its reference gathered on the host, compared in flat chunks) into a scratch result, then streamed by
    rows (the verdict kept). Yields the judged (case, entry before, entry streamed, failures before,
    failures streamed) and the ids of the cases that were streamed."""
    from kernelwright.verify import checks, inputs, verifier
    from kernelwright.verify.result import VerifyResult

    monkeypatch.setattr(verifier, "HOST_JUDGE_BYTES", 0)
    monkeypatch.setattr(inputs, "SLICE_BYTES", 8 * 64 * 3)
    monkeypatch.setattr(inputs, "STREAM_SLICE_BYTES", 8 * 2048)  # 2048 elements of inputs + outputs: a few rows
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 1000)
    judged, streamed = [], []
    real_judge, real_slices = verifier._judge, verifier.row_slices
    monkeypatch.setattr(verifier, "row_slices",
                        lambda case, device, shaped: streamed.append(case.id) or real_slices(case, device, shaped))

    def both(result, case, reported, runs, task, device):
        scratch = VerifyResult(task="", task_path="", candidate="", device=device)
        with monkeypatch.context() as today:
            today.setattr(verifier, "rows_independent", lambda case, device: False)
            before = real_judge(scratch, case, reported, runs, task, device)
        start = len(result.failures)
        entry = real_judge(result, case, reported, runs, task, device)
        judged.append((case, before, entry, scratch.failures, result.failures[start:]))
        return entry

    monkeypatch.setattr(verifier, "_judge", both)
    return judged, streamed


CORPUS = FIXTURES.parent / "corpus"


@pytest.mark.parametrize("task,candidate,expect", [
    ("rmsnorm", EXAMPLES / "rmsnorm.py", None),
    ("softmax", EXAMPLES / "softmax.py", None),
    ("rmsnorm", CORPUS / "bug_tail_mask_off_by_one.py", "nonfinite_output"),
    ("rmsnorm", CORPUS / "bug_swallows_nan.py", "special_values"),
    ("rmsnorm", CORPUS / "cheat_returns_constant.py", "constant_output"),
    ("rmsnorm", CORPUS / "bug_wrong_epsilon.py", "mismatch"),
    ("gelu", CORPUS / "bug_nondeterministic_noise.py", "nondeterministic"),
], ids=lambda v: getattr(v, "stem", None))
def test_benchmark_size_cases_streamed_by_rows_get_the_verdicts_and_numbers_of_the_host_path(
        judged_both_ways, task, candidate, expect):
    from test_checks import close

    judged, streamed = judged_both_ways
    result = verify(task, candidate, device="cpu", seed=3, shapes=1)
    assert result.accepted == (expect is None), result.failures[:2]
    several_rows = {case.id for case, *_ in judged if case.inputs[0].shape[0] >= 2}
    assert several_rows and several_rows <= set(streamed)  # one row: nothing to slice, judged as before
    for case, before, entry, failures_before, failures in judged:
        assert entry == close(before), case.id  # passed, rel_err, max_abs_err, elements, tolerance of each output
        assert failures == close(failures_before), case.id  # checks, messages, worst index, counts, got/expected
    found_streamed = {f["check"] for case, *_, failures in judged if case.id in streamed for f in failures}
    assert expect is None or expect in found_streamed
    data = result.as_json()
    assert data["memory"]["task_bytes"] > 0 and data["memory"]["largest_case"]
    assert data["memory"]["parent_peak_bytes"] is None and data["memory"]["worker_peak_bytes"] is None  # CPU
    if task == "rmsnorm" and expect is None:
        assert any(c.get("init_inputs") and c["passed"] for c in data["cases"]) and data["notes"] == []


def test_input_sets_drawn_on_the_device_are_drawn_again_by_the_worker(monkeypatch):
    """On a GPU the benchmark shape's inputs reach the worker as ``build_case`` arguments, not tensors, and
    the worker draws them again from the same seed. Simulated on the CPU with every case so drawn: the job
    carries no input tensors, a correct kernel passes, and a cache keyed by pointer still fails on the
    variant input sets (each drawn anew right before its call)."""
    from kernelwright.sandbox.runner import job_tensor_bytes
    from kernelwright.verify import verifier

    real_build, real_run, jobs = verifier.build_case, verifier.run_worker, []

    def drawn(module, **kwargs):
        case = real_build(module, **kwargs)
        case.draw = {k: kwargs.get(k) for k in ("case_id", "label", "knobs", "dtype", "distribution", "seed",
                                                "model_seed", "init_override")}
        return case

    monkeypatch.setattr(verifier, "build_case", drawn)
    monkeypatch.setattr(verifier, "run_worker", lambda job, **kw: jobs.append(job) or real_run(job, **kw))
    good = verify("rmsnorm", EXAMPLES / "rmsnorm.py", device="cpu", shapes=3, seed=5)
    assert good.accepted, good.failures
    assert all(isinstance(c["inputs"], dict) for c in jobs[0]["cases"])
    assert job_tensor_bytes([c["inputs"] for c in jobs[0]["cases"]]) == 0
    cached = verify("rmsnorm", FIXTURES.parent / "corpus" / "cheat_cache_by_pointer.py", device="cpu", shapes=3, seed=5)
    assert not cached.accepted


def test_a_gpu_busy_past_the_budget_is_a_budget_cut_not_a_rejection(monkeypatch):
    import contextlib
    import time

    from kernelwright.executor.timing import GpuBusy
    from kernelwright.run.offline import cut_by_budget
    from kernelwright.sandbox.runner import Limits
    from kernelwright.verify import verifier

    seen = []

    @contextlib.contextmanager
    def busy(device, *, shared=False, deadline=None):
        seen.append(deadline)
        raise GpuBusy("0", 12.0)
        yield

    monkeypatch.setattr(verifier, "timing_lock", busy)
    limits = Limits(timeout_s=100, deadline=time.monotonic() + 100)
    data = verify("rmsnorm", EXAMPLES / "rmsnorm.py", device="cpu", shapes=1, limits=limits).as_json()
    assert seen == [limits.deadline] and not data["accepted"]
    assert [(f["check"], f["limit"]) for f in data["failures"]] == [("timeout", "budget")]
    assert "GPU 0 stayed busy" in data["failures"][0]["message"]
    assert cut_by_budget(data, limits, Limits(timeout_s=600))  # the run retries it, it is not the kernel's fault
