"""``lockstep check``: the preflight alone, before anything is written."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.dates import AllowOpenOpt, parse_interval


@command("check")
def check_cmd(
    pipeline: PipelineArg,
    date_: Annotated[str | None, typer.Option("--date", help="also check this interval's input files")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    allow_open: AllowOpenOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Check a pipeline without writing: spec, schedule, suites, transforms, regions, roots,
    and with --date the interval (it exists and has closed, as a run asks) and its input and
    control files. Exit 0 when all is well."""
    from pipelines.preflight import preflight
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    interval = None if date_ is None else parse_interval(spec, date_)
    preflight(spec, interval, region or None, root=root, allow_open=allow_open)
    result = {"pipeline": spec.name, "spec": str(spec.path), "interval": interval.key if interval else None,
              "regions": region or spec.regions, "root": spec.root(root), "ok": True}
    if json_:
        print_json(result)
        return
    what = f" and the inputs of {interval.key}" if interval else ""
    console.print(f"[green]ok[/] {spec.name}: spec, suites, transforms and roots{what} pass preflight",
                  highlight=False)
