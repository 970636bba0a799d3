"""``lockstep verify``: are a certified generation's data files still the bytes certified?

Every member table of the generation (``region/layer/table`` at its Delta version) is
checked against the file hashes its certification binds (``bindings["files"]``): the set of
data files the Delta log names, each file's size and sha256. Every member is reported;
the command exits 2 when any failed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, err_console, print_json
from pipelines.cli.tables import show_table


def _decision(spec: Any, date_: str | None, at: str | None, root: str | None) -> Any:
    """The decision to verify: the one in force for ``--date``'s interval, the newest one of
    generation ``--at``, else the newest generation in force."""
    from pipelines.certify import active_certifications, current_certified, decisions
    from pipelines.cli.reconcile import _interval
    from pipelines.errors import CertificationError, SpecError

    if date_ is not None and at is not None:
        raise SpecError("verify: give --date or --at, not both")
    if at is not None:
        named = [d for d in decisions(spec, root=root) if d.generation_id == at]
        if not named:
            raise CertificationError(f"{spec.name}: no decision about generation {at!r}", retryable=False)
        certified = [d for d in named if d.certified]
        return (certified or named)[-1]
    if date_ is not None:
        interval = _interval(spec, date_)
        decision = active_certifications(spec, root=root).get(interval.key)
        if decision is None:
            raise CertificationError(f"{spec.name}: no certification of {interval.key} in force", retryable=False)
        return decision
    decision = current_certified(spec, root=root)
    if decision is None:
        raise CertificationError(f"{spec.name}: no certified generation", retryable=False)
    return decision


@command("verify")
def verify_cmd(
    pipeline: PipelineArg,
    date_: Annotated[str | None, typer.Option("--date", help="the interval whose certification in force to verify")] = None,
    at: Annotated[str | None, typer.Option("--at", help="a generation id (default: the newest in force)")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Check every data file of a certified generation against the hashes it was certified
    with (the files the Delta log names, their sizes and sha256). Exits 2 when any differs."""
    from pipelines.integrity import verify_members
    from pipelines.preflight import check_regions
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    check_regions(spec, region)
    d = _decision(spec, date_, at, root)
    files = (getattr(d, "bindings", None) or {}).get("files") or {}
    rows = verify_members(spec, d.interval_start, d.generation.members, files, regions=region or None, root=root)
    failed = [r for r in rows if not r["ok"]]
    if json_:
        print_json({"pipeline": spec.name, "interval": d.interval, "generation_id": d.generation_id,
                    "decision_id": d.decision_id, "status": d.status, "ok": not failed, "failed": len(failed),
                    "members": rows})
    else:
        t = Table(title=f"{spec.name} {d.interval}: generation {d.generation_id} ({d.status}, {d.kind})")
        for col in ("member", "version", "files", "bytes", "result"):
            t.add_column(col, justify="right" if col in ("version", "files", "bytes") else "left",
                         overflow="fold")
        for r in rows:
            result = Text("ok", style="green") if r["ok"] else Text("; ".join(r["problems"]), style="red")
            t.add_row(r["member"], str(r["version"]), str(r["files"]), f"{r['bytes']:,}", result)
        show_table(console, t)
    if failed:
        if not json_:
            regions = sorted({r["member"].split("/", 1)[0] for r in failed})
            again = " ".join(f"--region {r}" for r in regions)
            err_console.print(Text.assemble(
                ("error:", "bold red"), f" {len(failed)} of {len(rows)} table(s) of generation {d.generation_id} "
                f"failed verification: the data changed behind Delta's back after it was certified; re-run "
                f"`lockstep run {pipeline} --date {d.interval} {again} --force`, then `lockstep certify {pipeline} "
                f"--date {d.interval}`, or `lockstep rollback {pipeline} --to GENERATION` (an earlier one)"),
                highlight=False, soft_wrap=True)
        raise typer.Exit(2)
