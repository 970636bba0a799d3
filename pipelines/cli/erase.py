"""``lockstep erase``: delete a data subject's rows in every region and every interval, as an
audited decision; ``--status`` lists erasures, from request to physical removal.

On an ungoverned spec the erasure is carried out at once (as ``local:<user>``). On a governed
spec it is first a request (bound to the values' digest, never the values), approved with
``lockstep approve`` like an override; then ``lockstep erase ... --request <id>`` with the same
values carries it out. ``lockstep maintain`` deletes the older files still holding the rows.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.tables import show_table


def _show_status(spec: Any, rows: list[dict[str, Any]], json_: bool) -> None:
    if json_:
        print_json(rows)
        return
    if not console.is_terminal:
        for r in rows:
            took = "-" if r["seconds_to_removal"] is None else f"{r['seconds_to_removal']:.0f}s"
            n = "-" if r["rows"] is None else r["rows"]
            console.print(f"{r['erasure_id'] or r['request_id']}\t{r['state']}\t{r['column']} x{r['values_count']}"
                          f"\trows {n}\trequested {r['requested_at']:%Y-%m-%d %H:%M:%S}"
                          f"\trequest-to-removal {took}", highlight=False, soft_wrap=True)
        return
    table = Table(title=f"erasures: {spec.name}")
    for col in ("erasure", "state", "column", "values", "rows", "regions", "requested", "removed", "request→removal"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["erasure_id"] or r["request_id"], r["state"], r["column"], str(r["values_count"]),
                      "-" if r["rows"] is None else str(r["rows"]), ", ".join(r["regions"]) or "-",
                      f"{r['requested_at']:%Y-%m-%d %H:%M:%S}",
                      "-" if r["removed_at"] is None else f"{r['removed_at']:%Y-%m-%d %H:%M:%S}",
                      "-" if r["seconds_to_removal"] is None else f"{r['seconds_to_removal']:.0f}s")
    show_table(console, table)


@command("erase")
def erase_cmd(
    pipeline: PipelineArg,
    column: Annotated[str | None, typer.Option("--column", help="a column of the pipeline's raw tables")] = None,
    value: Annotated[list[str] | None, typer.Option("--value", help="a value to erase (repeatable)")] = None,
    values_file: Annotated[str | None, typer.Option("--values-file", help="a file of values, one a line")] = None,
    reason: Annotated[str, typer.Option("--reason", help="why: recorded with the decision")] = "",
    request: Annotated[str | None, typer.Option(
        "--request", help="carry out this approved erasure request (governed specs)")] = None,
    status: Annotated[bool, typer.Option("--status", help="list pending and completed erasures")] = False,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Erase a data subject: delete the rows whose --column holds a --value from every region's
    raw, quarantine and feature tables, every interval, then re-certify the affected intervals
    (`lockstep maintain` then deletes the older files). --status lists erasures."""
    from pipelines.errors import SpecError
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    if status:
        from pipelines.erasure import erasure_status

        _show_status(spec, erasure_status(spec, root=root), json_)
        return
    from pipelines.erasure import erase, find_subject, read_values
    from pipelines.governance import local_principal
    from pipelines.preflight import check_roots

    if not column:
        raise SpecError("erase: --column is required (a column of the pipeline's raw tables, e.g. card_id)")
    if not reason.strip():
        raise SpecError("erase: --reason is required (why the subject is erased: it is recorded)")
    values = read_values(value or [], values_file)
    check_roots(spec, root)
    subject = find_subject(spec, column, values, root=root)
    if spec.governance is not None and not spec.governance.allow_local:
        from pipelines.errors import GovernanceError

        raise GovernanceError(f"{spec.name}: governance.allow_local is off and an erasure is made on storage only "
                              "(the Lockstep API has no erasure route yet): allow local decisions for the "
                              "erasure's requester and approvers, or erase with a deployment that does", status=403)
    me = local_principal(spec, "erase", command=f"lockstep erase {spec.name} ...")
    approved = None
    if spec.governance is not None:
        from pipelines.governance import submit
        from pipelines.governance.erasure import approved_request

        if request is None:
            req = submit(spec, me, action="erase", reason=reason, root=root,
                         erase={"column": column, "digest": subject.digest, "count": len(subject.values)})
            if json_:
                print_json(req.as_json())
            else:
                console.print(f"{req.request_id} [pending] erasure of {len(subject.values)} {column} value(s) in every "
                              f"region, requested by {req.requester}; approve with `lockstep approve {spec.name} "
                              f"{req.request_id} --reason ...`, then run this command again with --request "
                              f"{req.request_id}", highlight=False)
            return
        approved = approved_request(spec, me, request, column=column, digest=subject.digest, root=root)
    else:
        from pipelines.governance import authorize

        authorize(spec, me, "erase", spec.regions)

    def step(region: str, what: str) -> None:
        if not json_:
            console.print(f"{what}: {region}" if region != "*" else what, highlight=False)

    done = erase(spec, me, subject, reason=reason, root=root, request=approved, on_step=step)
    if json_:
        print_json(done.as_json())
        return
    certified = sum(1 for d in done.intervals.values() if d["status"] == "certified")
    console.print(f"{done.erasure_id}: {done.rows} row(s) of {len(subject.values)} {column} value(s) deleted in "
                  f"{sum(1 for t in done.regions.values() if any(x['rows'] for x in t.values()))} region(s); "
                  f"{len(done.intervals)} interval(s) re-run, {certified} certified; run `lockstep maintain "
                  f"{spec.name}` to delete the older files", highlight=False)
