"""``lockstep init``, ``lockstep templates`` and ``lockstep schema``: start a team's own pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli import JsonOpt, command, console, print_json
from pipelines.cli.tables import show_table


@command("init")
def init_cmd(
    directory: Annotated[Path, typer.Argument(help="the new project's folder (new or empty)")],
    template: Annotated[str, typer.Option("--template", help="see `lockstep templates`")] = "card_spend",
    name: Annotated[str | None, typer.Option("--name", help="pipeline name (default: the folder's name)")] = None,
    regions: Annotated[str | None, typer.Option("--regions", help="comma-separated region ids")] = None,
    json_: JsonOpt = False,
) -> None:
    """Write a complete, working pipeline project from a shipped template."""
    from pipelines.templates import init_project

    made = init_project(directory, template=template, name=name,
                        regions=[r.strip() for r in regions.split(",") if r.strip()] if regions else None)
    if json_:
        print_json(made.to_json())
        return
    day = made.sample_dates[-1] if made.sample_dates else None
    console.print(f"wrote {len(made.files)} files to {made.directory} ({made.template} template, "
                  f"pipeline {made.pipeline}, regions {', '.join(made.regions)})")
    if made.sample_files:
        console.print(f"sample deliveries: {len(made.sample_files)} files, {made.sample_dates[0]} .. {day}")
    from pipelines.spec import load_spec

    date_ = day or load_spec(made.spec).start_date.isoformat()
    console.print(f"next: lockstep run {made.spec} --date {date_}   (then read {made.directory / 'README.md'})")


@command("templates")
def templates_cmd(json_: JsonOpt = False) -> None:
    """The pipeline templates shipped in the package (for `lockstep init --template`)."""
    from pipelines.templates import list_templates

    found = list_templates()
    if json_:
        print_json([{"name": t.name, "pipeline": t.pipeline, "description": t.description, "path": str(t.path)}
                    for t in found])
        return
    table = Table(title="templates")
    for col in ("name", "description"):
        table.add_column(col)
    for t in found:
        table.add_row(t.name, t.description)
    show_table(console, table)


@command("schema")
def schema_cmd(
    markdown: Annotated[bool, typer.Option("--markdown", help="the field reference (docs/spec-reference.md) instead")] = False,
) -> None:
    """Print the spec's JSON Schema (for editors and CI), or its field reference."""
    import sys

    if markdown:
        from pipelines.templates.reference import spec_reference

        sys.stdout.write(spec_reference())
        return
    from pipelines.spec import PipelineSpec

    sys.stdout.write(json.dumps(PipelineSpec.model_json_schema(), indent=2) + "\n")
