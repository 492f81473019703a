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
