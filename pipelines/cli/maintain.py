"""``lockstep maintain``: compaction, checkpoints and a vacuum that keeps certified versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.tables import show_table


@command("maintain")
def maintain_cmd(
    pipeline: PipelineArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be removed; change nothing")] = False,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compact small files, checkpoint every log and vacuum files no protected version needs
    (protected: decisions inside maintenance.rollback_window, the certification in force,
    unexpired overrides); an erasure's older files go whatever protected them."""
    from pipelines.maintain import maintain
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    report = maintain(spec, root=root, dry_run=dry_run)
    summary = report.summary()
    if json_:
        print_json(summary)
        return
    table = Table(title=f"maintain {spec.name}{' (dry run)' if dry_run else ''}: "
                        f"rollback window {spec.maintenance.rollback_window}")
    for col in ("table", "version", "kept versions", "files", "compacted", "removed" if not dry_run else "removable"):
        table.add_column(col)
    for t in report.tables:
        name = "/".join(t.uri.rstrip("/").split("/")[-3:])
        table.add_row(name, f"{t.version_before}→{t.version_after}", ",".join(map(str, t.kept_versions)) or "-",
                      f"{t.files_before}→{t.files_after}", str(t.files_compacted),
                      str(len(t.files_removable) if dry_run else t.files_removed))
    show_table(console, table)
    console.print(f"{summary['tables']} tables; {summary['files_compacted']} files compacted; "
                  + (f"{summary['files_removable']} removable" if dry_run else f"{summary['files_removed']} removed"),
                  highlight=False)
