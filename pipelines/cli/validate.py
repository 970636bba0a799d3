"""``lockstep validate``: run the expectation suites alone and show each region's results."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.core import _progress
from pipelines.cli.dates import parse_interval
from pipelines.cli.tables import show_table


@command("validate")
def validate_cmd(
    pipeline: PipelineArg,
    date_: Annotated[str, typer.Option("--date", help="interval: YYYY-MM-DD, or YYYY-MM-DDTHH[:MM] in sub-daily pipelines")],
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Validate every region's tables for one interval (policies apply; nothing is certified).

    The summary is the gate's verdict on each region's validation, from the same evidence
    (every complete batch at the generation's versions, the quarantined share against
    validation.quarantine_cap); exits 1 when it would block certification."""
    from pipelines.runner import new_run_id, validate
    from pipelines.spec import load_spec
    from pipelines.storage import join_uri
    from pipelines.validation.docs import docs_uri

    spec = load_spec(pipeline)
    interval = parse_interval(spec, date_)
    regions = region or spec.regions
    run_id = new_run_id()
    per_region = {}
    with _progress() as progress:
        task = progress.add_task(f"validate {spec.name} {interval.key}", total=len(regions), visible=not json_)
        for r in regions:
            per_region[r] = validate(spec, interval, r, root=root, run_id=run_id)
            progress.advance(task)
    # GX's Data Docs site, one per region (under the region's prefix); the first region's for the summary
    sites = {r: str(join_uri(docs_uri(spec.control_root(root), spec.name, r), "index.html")) for r in regions}
    docs = sites[regions[0]]
    # the summary is the gate's verdict on the versions just validated, from the same evidence
    # (validation batches at each version, quarantine caps), never the last step's own results
    from pipelines.reconcile import validation_verdict

    by_region: dict[str, dict[str, Any]] = validation_verdict(spec, interval, root=root, regions=list(regions))
    for r, s in by_region.items():
        s["data_docs"] = sites[r]
        s["validated_now"] = len(per_region[r])
    summary = {"interval": interval.key, "run_id": run_id, "data_docs": docs, "regions": by_region}
    if json_:
        print_json(summary)
    else:
        table = Table(title=f"{spec.name} {interval.key}: validation")
        for col in ("region", "checks", "failed", "quarantined rows", "blocking"):
            table.add_column(col)
        for r, s in by_region.items():
            blocking = escape(", ".join(s["blocking"][:3])) + (" …" if len(s["blocking"]) > 3 else "")
            table.add_row(r, str(s["checks"]), str(s["failed"]), f"{s['quarantined']:,}",
                          f"[red]{blocking}[/]" if blocking else "[green]none[/]")
        show_table(console, table)
        console.print(f"Data Docs: {docs}")
    if any(s["blocking"] for s in by_region.values()):
        raise typer.Exit(1)
