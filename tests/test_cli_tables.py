"""A CLI table piped to a file or another program is plain lines that keep every character
(rich's 80-column box cut long cells and wrapped them into fragments a shell tool cannot
match); on a terminal it is still drawn."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines.cli.tables import plain_lines, show_table
from pipelines.templates import list_templates

LONG = "x" * 150 + " the end"


def _table() -> Table:
    table = Table(title="[bold]checks[/]")
    for col in ("check", "result", "message"):
        table.add_column(col)
    table.add_row("not_null[txn_id]#0", "[green]pass[/]", LONG)
    table.add_row("unique", Text("BLOCK", style="red"), "two\nlines\tand a tab")
    return table


def test_piped_a_table_is_its_title_header_and_rows_untruncated_without_styles() -> None:
    out = io.StringIO()
    show_table(Console(file=out, width=80), _table())
    assert out.getvalue().splitlines() == [
        "checks", "check\tresult\tmessage", f"not_null#0\tpass\t{LONG}", "unique\tBLOCK\ttwo lines and a tab"]
    assert plain_lines(_table()) == out.getvalue().splitlines()


def test_on_a_terminal_the_table_is_drawn() -> None:
    out = io.StringIO()
    show_table(Console(file=out, width=80, force_terminal=True, color_system=None), _table())
    text = out.getvalue()
    assert "┏" in text and "the end" in text and LONG not in text  # the long cell wraps inside its box


def test_lockstep_templates_piped_names_every_template_with_its_whole_description() -> None:
    lockstep = Path(sys.executable).parent / "lockstep"  # the console script, its stdout a pipe
    done = subprocess.run([str(lockstep), "templates"], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["templates", "name\tdescription"]
    assert sorted(lines[2:]) == sorted(f"{t.name}\t{t.description}" for t in list_templates())
    assert not any(ch in done.stdout for ch in "┏━│…")


def test_a_check_id_naming_its_column_keeps_it_in_the_reconcile_table() -> None:
    """``not_null[txn_id]#0``: rich reads ``[txn_id]`` as a style tag and drops it, on a
    terminal too, unless the CLI escapes data before it reaches a cell."""
    from pipelines.cli.reconcile import _checks_table

    row = {"check_id": "values_to_not_be_null[txn_id]#0", "region": "eu-west", "table": "raw/transactions",
           "policy": "block", "success": False, "blocking": True, "message": "3 of 10 rows unexpected, e.g. [None]"}
    [line] = plain_lines(_checks_table("checks", [row]))[2:]
    assert line == "values_to_not_be_null[txn_id]#0\teu-west\traw/transactions\tblock\tBLOCK\t" \
        "3 of 10 rows unexpected, e.g. [None]"
    drawn = io.StringIO()
    Console(file=drawn, width=200, force_terminal=True, color_system=None).print(_checks_table("checks", [row]))
    assert "values_to_not_be_null[txn_id]#0" in drawn.getvalue()


def test_every_command_help_is_one_line_per_paragraph() -> None:
    """`lockstep --help` lists each command with its help's first paragraph: a docstring's own
    line breaks would break that line mid-sentence (typer keeps them in the list)."""
    import typer.main

    from pipelines.cli import _register, app

    _register()

    def helps(group: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
        for name, sub in getattr(group, "commands", {}).items():
            yield prefix + name, sub.help or ""
            yield from helps(sub, prefix + name + " ")

    found = dict(helps(typer.main.get_command(app)))
    assert {"approve", "release promote", "airflow up"} <= set(found)
    ragged = {name: h for name, h in found.items() if "\n" in h.replace("\n\n", "")}
    assert ragged == {}, ragged
    lockstep = Path(sys.executable).parent / "lockstep"
    listed = subprocess.run([str(lockstep), "--help"], capture_output=True, text=True, check=False, timeout=120,
                            env={**os.environ, "COLUMNS": "250"})
    assert "Approve (or --reject) a request for an override or a rollback; with the approvals the spec requires" \
        in listed.stdout, listed.stdout


def test_json_before_the_command_name_is_the_command_s_json(tmp_path: Path) -> None:
    """`lockstep --json status X` is `lockstep status X --json`: its error one JSON document
    (a usage error too), not click's "No such option: --json"."""
    import json

    from pipelines.cli import json_after_command

    assert json_after_command(["--json", "status", "x"]) == ["status", "x", "--json"]
    assert json_after_command(["--debug", "--json", "release", "list", "x"]) == ["--debug", "release", "list", "x", "--json"]
    assert json_after_command(["status", "x", "--json"]) == ["status", "x", "--json"]
    assert json_after_command(["--json"]) == ["--json"]
    lockstep = Path(sys.executable).parent / "lockstep"
    for args, says in ((["status", "nosuch"], "nosuch: no such pipeline"),
                       (["run", "fraud_features", "--bogus"], "No such option: --bogus")):
        done = subprocess.run([str(lockstep), "--json", *args], capture_output=True, text=True, check=False,
                              timeout=120, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert says in json.loads(done.stdout)["error"]["message"], done.stdout
