"""optimize's final table at 80 columns: shapes and configurations whole, no columns of dashes on a CPU."""

import io
from pathlib import Path

from rich.console import Console

from kernelwright.run.result import OptimizeResult
from kernelwright.search.report import render_optimize

KNOBS = {"tokens": 4096, "heads": 2, "a": 32, "b": 8, "head_dim": 128}
CONFIG = {"one_pass": True, "rows": 1, "warps": 8, "stages": 2}


def _result(device: str, timed: bool) -> OptimizeResult:
    row = {"knobs": KNOBS, "dtype": "bfloat16", "timings": {"candidate": {"median_ms": 0.1234}}, "gbps": 3021.0,
           "fraction_of_copy": 0.71, "speedup": {"eager": 3.1, "native": 1.4, "compile": 1.2}}
    verdict = {"status": "faster", "sentence": "1.20× the fastest baseline",
               "shapes": [{"knobs": KNOBS, "ratio": 1.2, "fastest_baseline": "compile"}]}
    return OptimizeResult(task="rope", agent="offline", out=Path("/tmp/run"), device=device,
                          best_path=Path("/tmp/run/best.py"), accepted=True, message="ok", verdict=verdict,
                          buckets=[{"knobs": KNOBS, "config": CONFIG, "round": 2 if timed else None}],
                          final_rows=[row] if timed else [], evaluations={"run": 3})


def _render(result, width: int = 80) -> str:
    out = io.StringIO()
    render_optimize(Console(file=out, width=width, color_system=None), result)
    return out.getvalue()


def test_timed_table_at_80_columns_keeps_shape_configuration_and_ratio_whole():
    text = _render(_result("cuda:0", timed=True))
    assert "…" not in text
    assert "4096×2×32×8×128" in text and "one-pass ×1 rows, 8 warps, 2 stages" in text
    assert "  × fastest baseline: 1.20 vs torch.compile" in text and "  × eager: 3.10" in text


def test_cpu_table_has_no_timing_columns_and_fits_80_columns_as_a_table():
    text = _render(_result("cpu", timed=False))
    assert "┃" in text and "…" not in text and "GB/s" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "4096×2×32×8×128" in text and "prior (not timed)" in text and "nothing was timed" in text


def test_a_pointwise_configuration_is_named_by_its_block_not_rows():
    from kernelwright.search.report import _config_text

    cfg = {"one_pass": True, "rows": 1, "block": 1024, "warps": 4, "stages": 2}
    assert _config_text(cfg, "pointwise") == "BLOCK=1024 elements, 4 warps, 2 stages"
    assert _config_text(cfg).startswith("one-pass ×1 rows")
    column = {"one_pass": False, "rows": 32, "block": 32, "warps": 8, "stages": 2, "column": True}
    assert _config_text(column, "rows").startswith("column: 32 inner × 32 reduced")
