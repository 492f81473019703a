"""Tables that stay readable in any terminal: the full table when it fits (or when asked for with
``--wide``), otherwise one block per row, so no value is cut to ``can…`` or a shape broken across lines.

Cells are rich markup, already escaped by the caller (rich reads "[llm]" as markup).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def _plain_width(markup: str) -> int:
    return max((cell_len(line) for line in Text.from_markup(markup).plain.splitlines()), default=0)


def natural_width(columns: list[str], rows: list[list[str]]) -> int:
    """Columns of the table with no cell wrapped: each column's widest cell, rich's padding and borders."""
    widths = [max([_plain_width(c) for c in (header, *(r[i] for r in rows))]) for i, header in enumerate(columns)]
    return sum(widths) + 3 * len(columns) + 1


def render(console: Console, title: str, columns: list[str], rows: list[list[str]], *, key: int = 1,
           wide: bool = False, right: tuple[str, ...] = ()) -> None:
    """``title`` and ``columns`` are plain text; ``key`` leading columns name a row in the narrow layout;
    ``right`` names the columns justified right in the table."""
    needed = natural_width(columns, rows)
    if not wide and needed > console.width:
        _records(console, title, columns, rows, key)
        return
    # the title on its own line: a table's title wraps at the table's width, a narrow table breaks it
    console.print(f"[bold]{escape(title)}[/]", highlight=False)
    table = Table()
    for column in columns:
        table.add_column(escape(column), justify="right" if column in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if needed > console.width:  # --wide: lines as long as the table needs (a pager or a file keeps them whole)
        console = Console(file=console.file, width=needed, color_system=console.color_system,
                          force_terminal=console.is_terminal, no_color=console.no_color)
    console.print(table)


def _records(console: Console, title: str, columns: list[str], rows: list[list[str]], key: int) -> None:
    """One block per row: its key cells as a heading, every other cell as ``column: value`` on its own line."""
    # lines wrap at spaces only: a shape (8192×32×128) or a dtype has none, so each stays whole
    console.print(f"[bold]{escape(title)}[/]", highlight=False)
    for row in rows:
        console.print("[bold]" + "  ".join(row[:key]) + "[/]", highlight=False)
        for column, cell in zip(columns[key:], row[key:]):
            console.print(f"  {escape(column)}: {cell}", highlight=False)
