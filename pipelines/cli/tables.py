"""Tables on the CLI's standard output: drawn by rich on a terminal; piped (to a file, to
``grep``, to another program) as plain lines that keep every character, never cut to an
80-column box. ``--json`` is the machine's format; these lines are for people and shell tools."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["show_table", "plain_lines"]


def _plain(cell: RenderableType | None) -> str:
    """A cell's text without its styles (markup in a string is read as rich reads it)."""
    if cell is None:
        return ""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def plain_lines(table: Table) -> list[str]:
    """The table as plain lines: its title, the header, then one line per row, cells
    separated by a tab (a tab or line break inside a cell becomes a space, so each row is one
    line of as many fields as the header)."""
    def line(cells: list[str]) -> str:
        return "\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells)

    lines = [_plain(table.title)] if table.title else []
    if table.show_header:
        lines.append(line([_plain(c.header) for c in table.columns]))
    columns = [list(c.cells) for c in table.columns]
    lines += [line([_plain(cell) for cell in row]) for row in zip(*columns, strict=True)]
    return lines


def show_table(out: Console, table: Table) -> None:
    """Print ``table`` on ``out``: rich's drawing on a terminal, :func:`plain_lines` when piped."""
    if out.is_terminal:
        out.print(table)
        return
    out.file.write("".join(f"{text}\n" for text in plain_lines(table)))  # tabs kept, not expanded
