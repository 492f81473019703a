import json

from conftest import CORPUS, EXAMPLES
from kernelwright.bench.bencher import SCHEMA, bench


def test_cpu_bench_runs_the_whole_path_and_labels_timings_not_meaningful():
    result = bench("rmsnorm", EXAMPLES / "rmsnorm.py", device="cpu")
    data = json.loads(json.dumps(result.as_json()))
    assert data["schema"] == SCHEMA and data["ok"] and data["timings_meaningful"] is False
    row = data["rows"][0]
    assert set(row["timings"]) == {"candidate", "candidate_repeat", "eager", "native"}
    assert row["recheck"]["passed"] and row["fastest_baseline"] in {"eager", "native"}
    tokens, hidden = row["knobs"]["tokens"], row["knobs"]["hidden"]
    assert row["bytes"] == 2 * tokens * hidden * 2 + hidden * 2  # bf16 in, out, weight
    assert row["speedup"]["eager"] > 0


def test_bench_rechecks_output_after_timing():
    bad = bench("rmsnorm", CORPUS / "bug_wrong_output_dtype.py", device="cpu")
    assert not bad.ok and bad.failures[0]["check"] == "recheck_output_dtype"
    assert bad.rows and not bad.rows[0]["recheck"]["passed"]


def test_a_crashing_candidate_is_a_failed_bench_not_an_exception():
    result = bench("rmsnorm", CORPUS / "crash_missing_modelnew.py", device="cpu")
    assert not result.ok and result.failures[0]["check"] == "missing_modelnew" and not result.rows


def test_timing_runs_without_the_verifiers_memory_poisoning(tmp_path):
    # torch.empty* filled with NaN is an extra pass over each output: right for verification, wrong for timing
    source = (EXAMPLES / "rmsnorm.py").read_text().replace(
        "    def forward(self, x):\n",
        "    def forward(self, x):\n        if torch.are_deterministic_algorithms_enabled():\n"
        "            raise RuntimeError('memory poisoning is on')\n")
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert bench("rmsnorm", probe, device="cpu").ok
    from kernelwright.verify import verify

    verdict = verify("rmsnorm", probe, device="cpu", shapes=1)
    assert any("memory poisoning is on" in f["message"] for f in verdict.failures)


def test_the_worker_memory_estimate_is_the_rotation_of_input_sets_at_the_shape():
    from kernelwright.bench.bencher import job_bytes
    from kernelwright.bench.worker_side import ROTATION_BYTES, rotation_sets
    from kernelwright.tasks.task import load_task

    task = load_task("rmsnorm")
    small = {**task.knobs, "tokens": 8, "hidden": 64}
    one = 8 * 64 * 2  # bf16 x; the weight is a parameter, not an input
    assert job_bytes(task, [small], "bfloat16") == one * rotation_sets(one) == one * 8
    big = {**task.knobs, "tokens": 2**16, "hidden": 2**14}  # 4 GiB in fp32: built on meta, allocates nothing
    assert job_bytes(task, [small, big], "float32") == 2**16 * 2**14 * 4
    assert rotation_sets(2**32) == 1 and rotation_sets(ROTATION_BYTES // 2) == 2


def test_a_benchmark_size_recheck_is_judged_streamed_by_rows_as_the_verifier_does(monkeypatch):
    from kernelwright.bench import bencher
    from kernelwright.verify import verifier

    calls = []
    real = verifier.row_slices
    monkeypatch.setattr(bencher, "HOST_JUDGE_BYTES", 0)  # every shape counts as benchmark size
    monkeypatch.setattr(verifier, "row_slices", lambda case, device, shaped: calls.append(case.label) or real(case, device, shaped))
    good = bench("rmsnorm", EXAMPLES / "rmsnorm.py", device="cpu")
    assert good.ok and good.rows[0]["recheck"]["passed"] and calls == ["recheck"]
    assert set(good.as_json()["phases"]) == {"ceilings", "worker", "judge"}
    bad = bench("rmsnorm", CORPUS / "cheat_returns_constant.py", device="cpu")
    assert not bad.ok and bad.failures[0]["check"].startswith("recheck_") and calls == ["recheck", "recheck"]
