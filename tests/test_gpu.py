"""GPU-only checks (run by scripts/gpu_check.sh on an H100/H200). Tests named ``test_timing_*`` measure and
must run alone on the GPU (``-k timing -n 0``); the rest only check correctness and may run in parallel."""

import pytest

from conftest import CORPUS, EXAMPLES, FIXTURES
from kernelwright.bench.bencher import bench
from kernelwright.tasks import bundled_names
from kernelwright.verify import verify

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", bundled_names())
def test_every_example_is_accepted_on_the_gpu_including_the_benchmark_shape(name):
    result = verify(name, EXAMPLES / f"{name}.py", device="cuda")
    assert result.accepted, [f["message"] for f in result.failures[:3]]
    assert any(c["shape"] == "benchmark" for c in result.cases)
    assert result.environment["device_name"] and result.environment["cuda"]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.py")), ids=lambda p: p.stem)
def test_corpus_is_rejected_on_the_gpu_for_its_reason(path):
    from verify.test_corpus import check_bad

    check_bad(path, "cuda")


@pytest.mark.parametrize("path", sorted((CORPUS / "controls").glob("*.py")), ids=lambda p: p.stem)
def test_corpus_controls_are_accepted_on_the_gpu(path):
    from verify.test_corpus import check_control

    check_control(path, "cuda")


def test_sanitize_passes_a_correct_kernel_and_rejects_an_uninitialised_read():
    good = verify("silu", EXAMPLES / "silu.py", device="cuda", sanitize=True)
    assert good.accepted and good.checks["sanitizer"]["passed"] == 2, good.failures[:2]
    bad = verify("silu", CORPUS / "bug_uninitialised_shared_memory.py", device="cuda", sanitize=True)
    assert {"sanitizer_racecheck", "sanitizer_memcheck"} & {f["check"] for f in bad.failures}, bad.failures[:3]


def test_timing_bench_on_gpu_measures_and_rechecks():
    result = bench("rmsnorm", EXAMPLES / "rmsnorm.py", device="cuda")
    assert result.ok and result.timings_meaningful
    row = result.rows[0]
    assert row["recheck"]["passed"] and row["timings"]["candidate"]["n"] >= 10
    assert 0 < row["fraction_of_copy"] < 1.2


def test_timing_a_deliberately_slowed_candidate_measures_slower():
    fast = bench("rmsnorm", EXAMPLES / "rmsnorm.py", device="cuda", baseline_kinds="eager")
    slow = bench("rmsnorm", FIXTURES / "rmsnorm_slowed.py", device="cuda", baseline_kinds="eager")
    fast_ms = fast.rows[0]["timings"]["candidate"]["median_ms"]
    assert slow.rows[0]["timings"]["candidate"]["median_ms"] > 3 * fast_ms
    assert fast.rows[0]["noise"] < 0.05  # the same kernel timed twice in one run agrees within a few percent


def test_timing_side_stream_work_is_not_measured_faster_than_it_is():
    honest = bench("rmsnorm", EXAMPLES / "rmsnorm.py", device="cuda", baseline_kinds="eager")
    cheat = bench("rmsnorm", FIXTURES / "rmsnorm_side_stream.py", device="cuda", baseline_kinds="eager")
    flagged = any(f["check"] == "work_outside_timed_stream" for f in cheat.failures)
    measured = cheat.rows[0]["timings"]["candidate"]["median_ms"]
    assert flagged or measured >= honest.rows[0]["timings"]["candidate"]["median_ms"]
    assert not cheat.ok
