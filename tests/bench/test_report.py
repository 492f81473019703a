"""The files a bench writes: CSV schema, JSON schema, the PNG; and the sweep's shapes."""

import csv
import json

from conftest import EXAMPLES
from kernelwright.bench import report
from kernelwright.bench.bencher import SCHEMA, bench, ladder, sweep_shapes
from kernelwright.tasks import load_task


def test_sweep_uses_shapes_or_a_ladder():
    assert sweep_shapes(load_task("rmsnorm")) == [dict(s) for s in load_task("rmsnorm").shapes]
    from conftest import FIXTURES

    kb = load_task(FIXTURES / "kernelbench_softmax_huge.py")
    rungs = ladder(kb)
    assert [r["batch_size"] for r in rungs] == [2048, 4096, 8192, 16384, 32768, 65536]
    assert all(r["dim"] == 393216 for r in rungs)


def test_written_files_follow_the_schema(tmp_path):
    result = bench("swiglu", EXAMPLES / "swiglu.py", device="cpu", baseline_kinds="eager,native")
    paths = report.write(result, tmp_path)
    assert [p.name for p in paths] == ["bench_swiglu.csv", "bench_swiglu.json", "bench_swiglu.png"]
    with open(paths[0]) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == report.CSV_COLUMNS
    assert {r["implementation"] for r in rows} == {"candidate", "candidate_repeat", "eager"}  # swiglu: no NATIVE
    assert all(r["timings_meaningful"] == "False" and r["torch"] for r in rows)
    data = json.loads(paths[1].read_text())
    assert data["schema"] == SCHEMA and data["rows"][0]["notes"]["native"].startswith("the task declares no")
    assert paths[2].read_bytes()[:4] == b"\x89PNG"


def test_unknown_baseline_is_a_usage_error():
    import pytest

    from kernelwright.errors import UsageError

    with pytest.raises(UsageError, match="choose from"):
        bench("rmsnorm", EXAMPLES / "rmsnorm.py", device="cpu", baseline_kinds="eager,fastest")



def _sweep_result(device: str):
    from kernelwright.bench.bencher import BenchResult

    rows = [{"knobs": {"tokens": 64, "hidden": 64}, "bytes": 64 * 64 * 4, "dtype": "float32",
             "timings": {"candidate": {"median_ms": 1.0}, "eager": {"median_ms": 2.0}}} for _ in range(3)]
    return BenchResult("rmsnorm", "k.py", device, {"device_name": "x"}, rows=rows)


def test_a_cpu_sweep_gives_each_entry_its_own_point_labelled_with_the_shape_run(tmp_path):
    cpu = _sweep_result("cpu")  # every sweep shape shrank to the same CPU-sized shape
    xs, labels = report.x_axis(cpu, cpu.rows)
    assert xs == [0.0, 1.0, 2.0] and labels == ["1: 64×64", "2: 64×64", "3: 64×64"]
    assert report.plot_bandwidth(cpu, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    gpu = _sweep_result("cuda")
    assert report.x_axis(gpu, gpu.rows)[0] == [64 * 64 * 4 / 2**20] * 3  # a GPU sweep: sizes, as measured
