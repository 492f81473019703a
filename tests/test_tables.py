"""Tables at any terminal width: whole values in a narrow terminal, the table when it fits or with --wide."""

import io

from rich.console import Console

from kernelwright.tables import natural_width, render

COLUMNS = ["shape", "dtype", "candidate ms (IQR)", "eager ms", "native ms", "best baseline ×", "GB/s", "re-check"]
ROWS = [["4096×2×32×8×128", "bfloat16", "0.1234 (0.0012)", "0.2345", "0.3456", "2.80 vs native", "3021.5", "ok"]]


def _render(width: int, **kw) -> str:
    out = io.StringIO()
    render(Console(file=out, width=width, color_system=None), "bench rope", COLUMNS, ROWS, key=2, **kw)
    return out.getvalue()


def test_a_table_wider_than_the_terminal_becomes_one_block_per_row_with_every_value_whole():
    assert natural_width(COLUMNS, ROWS) > 80
    text = _render(80)
    assert "┃" not in text and "…" not in text
    assert "4096×2×32×8×128  bfloat16" in text.splitlines()[1]
    assert "  candidate ms (IQR): 0.1234 (0.0012)" in text and "  best baseline ×: 2.80 vs native" in text


def test_a_table_that_fits_stays_a_table():
    text = _render(200)
    header = next(line for line in text.splitlines() if "candidate ms (IQR)" in line)
    assert "┃" in header and "4096×2×32×8×128" in text and "…" not in text


def test_wide_keeps_the_full_table_in_a_narrow_terminal():
    text = _render(80, wide=True)
    assert "┃" in text and "…" not in text
    assert any("4096×2×32×8×128" in line and "2.80 vs native" in line for line in text.splitlines())
