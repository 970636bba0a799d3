"""Reconciliation and certification commands: reconcile, certify, explain, rollback, override, diff.

``reconcile`` shows (runs the checks, certifies nothing); ``certify``, ``rollback`` and
``override`` apply, each as one audited decision in the certification log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, err_console, print_json
from pipelines.cli.dates import AllowOpenOpt, parse_interval
from pipelines.cli.govern import DEFAULT_URL, AirflowUrlOpt, ViaOpt, request_decision
from pipelines.cli.tables import show_table

DateOpt = Annotated[str, typer.Option("--date", help="interval: YYYY-MM-DD, or YYYY-MM-DDTHH[:MM] in sub-daily pipelines")]


def _interval(spec: Any, value: str) -> Any:
    return parse_interval(spec, value)


def _result_row(r: Any) -> dict[str, Any]:
    return {"check_id": r.check_id, "check_type": r.check_type, "region": r.region, "table": r.table,
            "policy": r.policy, "success": r.success, "blocking": r.blocking, "message": r.message,
            "observed": r.observed, "threshold": r.threshold, "details": r.details}


def _checks_table(title: str, results: list[dict[str, Any]]) -> Table:
    t = Table(title=title)
    for col in ("check", "region", "table", "policy", "result", "message"):
        t.add_column(col, overflow="fold")
    for r in results:
        mark = "[green]pass[/]" if r["success"] else ("[red]BLOCK[/]" if r["blocking"] else "[yellow]warn[/]")
        t.add_row(*map(escape, (r["check_id"], r["region"], r["table"], r["policy"])), mark, escape(r["message"]))
    return t


@command("reconcile")
def reconcile_cmd(
    pipeline: PipelineArg,
    date_: DateOpt,
    root: RootOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="list passing checks too")] = False,
    allow_open: AllowOpenOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Run the cross-region checks of one interval and report them; certifies nothing.

    Exits 1 when a check would block certification."""
    from pipelines.preflight import require_closed
    from pipelines.runner import new_run_id, reconcile_step
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    interval = _interval(spec, date_)
    require_closed(spec, interval, allow_open=allow_open)  # it records results: a closed interval's only
    run_id = new_run_id()
    results = reconcile_step(spec, interval, root=root, run_id=run_id)
    rows = [_result_row(r) for r in results]
    blocking = [r for r in rows if r["blocking"]]
    if json_:
        print_json({"pipeline": spec.name, "interval": interval.key, "run_id": run_id, "checks": len(rows),
                    "failed": sum(not r["success"] for r in rows), "blocking": len(blocking), "results": rows})
    else:
        shown = rows if all_ else [r for r in rows if not r["success"]]
        show_table(console, _checks_table(f"{spec.name} {interval.key}: {len(rows)} checks, {len(blocking)} blocking", shown))
        console.print("would certify" if not blocking else "[red]would block[/]: see `lockstep explain`")
    if blocking:
        raise typer.Exit(1)


def _decision_line(d: Any) -> str:
    if d.certified:
        extra = f" until {d.expires_at:%Y-%m-%d %H:%M}" if d.expires_at else ""
        return f"[green]certified[/] {d.interval} generation {d.generation_id} ({d.kind} by {d.who}{extra})"
    checks = sorted({f"{r['check_id']}@{r['region']}" for r in d.reasons})
    return f"[red]blocked[/] {d.interval} generation {d.generation_id}: {len(d.reasons)} reason(s): {', '.join(checks)}"


def _decision_json(d: Any) -> dict[str, Any]:
    return {"decision_id": d.decision_id, "status": d.status, "kind": d.kind, "interval": d.interval,
            "generation_id": d.generation_id, "generation": d.generation.members, "who": d.who,
            "decided_at": d.decided_at, "run_id": d.run_id, "reason": d.reason, "reasons": d.reasons,
            "expires_at": d.expires_at, "spec_hash": d.spec_hash, "suites_hash": d.suites_hash,
            "code_version": d.code_version, "target": d.target, "log_version": d.log_version, "digest": d.digest,
            "bindings": d.bindings}


@command("certify")
def certify_cmd(pipeline: PipelineArg, date_: DateOpt, root: RootOpt = None, allow_open: AllowOpenOpt = False,
                json_: JsonOpt = False) -> None:
    """Run the checks, record them, then certify the interval's generation or record the block.

    Exits 1 when blocked."""
    from pipelines.governance import local_principal
    from pipelines.runner import certify
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    interval = _interval(spec, date_)
    me = local_principal(spec, "certify", command=f"lockstep certify {pipeline} --date {date_}")
    d = certify(spec, interval, root=root, allow_open=allow_open, actor=me.identity)
    if json_:
        print_json(_decision_json(d))
    else:
        console.print(_decision_line(d))
        if not d.certified:
            console.print(f"why: lockstep explain {pipeline} --date {date_}{f' --root {root}' if root else ''}")
    if not d.certified:
        raise typer.Exit(1)


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


@command("explain")
def explain_cmd(
    pipeline: PipelineArg,
    date_: DateOpt,
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions' checks (repeatable)")] = None,
    blocking: Annotated[bool, typer.Option("--blocking", help="only the checks that block")] = False,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Why an interval was blocked (or certified): what blocks first (region, table, keys or
    columns, observed vs threshold), then the warnings grouped by check, and a drift table
    (region x column)."""
    from pipelines.certify import explain
    from pipelines.preflight import check_regions
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    check_regions(spec, region)
    ex = explain(spec, _interval(spec, date_), root=root)
    if region:  # a cross-region check (region "*") concerns every region
        ex["failed"] = [f for f in ex["failed"] if f["region"] in region or f["region"] == "*"]
        ex["drift"] = {r: cells for r, cells in ex["drift"].items() if r in region}
    if blocking:
        ex["failed"] = [f for f in ex["failed"] if f["blocking"]]
    if json_:
        print_json(ex)
        return
    console.print(f"[bold]{spec.name} {ex['interval']}[/]: in force: "
                  + (f"[green]{ex['in_force']}[/]" if ex["in_force"] else "[yellow]not certified[/]"))
    for d in ex["decisions"]:
        note = f" reason: {d['reason']}" if d["reason"] else ""
        console.print(f"  {d['decided_at']:%Y-%m-%d %H:%M:%S} {d['kind']:<8} {d['status']:<9} {d['generation_id']} "
                      f"by {d['who']} (run {d['run_id']}){note}")

    if ex.get("stale"):
        console.print(f"[yellow]{escape(ex['stale']['why'])}[/]; re-certify: lockstep backfill {pipeline} --start "
                      f"{ex['interval'][:10]} --end {ex['interval'][:10]}", highlight=False)
    for c in ex.get("window_causes") or []:
        console.print(f"[red]cause may lie in {c['interval']}[/]: it is inside this interval's lookback and was "
                      f"{c['state']} itself ({escape(', '.join(c['checks'][:4]))}); fix it first "
                      f"(`lockstep explain {pipeline} --date {c['interval']}`), then re-run this one", highlight=False)
    for b in ex["earlier_blocks"]:
        console.print(f"[yellow]earlier block[/] {b['generation_id']} at {b['decided_at']:%Y-%m-%d %H:%M:%S}:")
        for r in b["reasons"]:
            console.print(f"  {r['check_id']} {r['region']}/{r['table']}: {r['message']}", highlight=False)
    blocks = [f for f in ex["failed"] if f["blocking"]]
    warnings = [f for f in ex["failed"] if not f["blocking"]]
    if not ex["failed"]:
        console.print("no failed checks in the latest run" + (" (filtered)" if region or blocking else ""))
    elif not blocks:
        console.print("nothing blocks: only warnings")
    for f in blocks:
        _print_block(f)
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in warnings:
        groups.setdefault(f["check_id"], []).append(f)
    if groups:
        console.print(f"\n[yellow]{len(warnings)} warning(s)[/] in {len(groups)} check(s) (they do not block):")
    for check_id, fs in groups.items():
        regions = sorted({f["region"] for f in fs})
        where = f"{len(regions)} regions ({', '.join(regions)})" if len(regions) > 1 else f"region={regions[0]}"
        console.print(f"  [yellow]warn[/] [bold]{check_id}[/] {where} table={fs[0]['table']}", highlight=False)
        console.print(f"    e.g. {fs[0]['message']}", highlight=False)
    if ex["drift"]:
        _print_drift(spec.regions, ex["drift"])


def _print_block(f: dict[str, Any]) -> None:
    from pipelines.text import shown

    console.print(f"\n[red]BLOCK[/] [bold]{f['check_id']}[/] region={f['region']} table={f['table']}")
    console.print(f"  {f['message']}", highlight=False)
    det = f["details"]
    if f["check_type"] == "parity":
        for label, key in (("changed keys", "changed_keys"), ("only in region", "only_in_region"),
                           ("missing in region", "missing_in_region")):
            if det.get(key):
                console.print(f"  {label} ({det['counts'][key.replace('_keys', '')]}): {shown(det[key][:50])}",
                              highlight=False)
        if det.get("changed_columns"):
            console.print(f"  differing columns: {shown(det['changed_columns'])}  (vs {det.get('reference')}, "
                          f"{det.get('bytes_moved', 0):,} bytes moved)", highlight=False)
        for s in det.get("samples", [])[:5]:
            console.print(f"    {shown(s['key'])}: " + ", ".join(f"{c}: {shown(v['b'])} (consensus {shown(v['a'])})"
                                                           for c, v in s["columns"].items()), highlight=False)
    elif f["observed"] is not None and f["check_type"] not in ("drift",):
        console.print(f"  observed {shown(f['observed'])}  threshold {shown(f['threshold'])}", highlight=False)


def _print_drift(regions: list[str], drift: dict[str, dict[str, dict[str, Any]]]) -> None:
    columns = sorted({c for cols in drift.values() for c in cols})
    windowed = any("psi_window" in v for cols in drift.values() for v in cols.values())
    t = Table(title="drift: PSI / KS vs pooled other regions" + (" (vs own window)" if windowed else ""))
    t.add_column("region")
    for c in columns:
        t.add_column(c, justify="right")
    for region in regions:
        if region not in drift:
            continue
        cells = drift[region]
        row = []
        for c in columns:
            v = cells.get(c)
            if v is None:
                row.append("")
                continue
            text = f"{_cell(v.get('psi_pooled'))} / {_cell(v.get('ks_pooled'))}"
            if "psi_window" in v:
                text += f" ({_cell(v.get('psi_window'))} / {_cell(v.get('ks_window'))})"
            row.append(f"[red]{text}[/]" if v["fail"] else text)
        t.add_row(region, *row)
    show_table(console, t)


@command("rollback")
def rollback_cmd(
    pipeline: PipelineArg,
    to: Annotated[str, typer.Option("--to", help="the id of a generation certified before (`explain` shows it)")],
    reason: Annotated[str, typer.Option("--reason", help="why: recorded with the decision")],
    replacing: Annotated[str | None, typer.Option(
        "--from", help="the generation you saw in force (of the interval; with --pipeline-wide, of the pipeline): "
        "refused if another decision changed it since")] = None,
    pipeline_wide: Annotated[bool, typer.Option(
        "--pipeline-wide", help="also move the pipeline's generation in force back: every later interval stops "
        "being in force (states what changes; needs --yes or a confirmation)")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="confirm a --pipeline-wide rollback without asking")] = False,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Certify an earlier generation of its interval again (a new audited decision; tables are
    never restored). What consumers read for every other interval is unchanged; --pipeline-wide
    moves the pipeline's generation in force back to it (later intervals are revoked).

    On a governed spec (or --via airflow) this records a request that takes effect with the
    approvals the spec requires (`lockstep approve`)."""
    from pipelines.certify import rollback
    from pipelines.certify.operator import rollback_changes
    from pipelines.errors import CertificationError
    from pipelines.governance import local_principal
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    scope = "pipeline" if pipeline_wide else "interval"
    if pipeline_wide and not yes:
        changes = rollback_changes(spec, to, scope=scope, root=root, replacing=replacing)["line"]
        if json_ or not console.is_terminal:
            raise CertificationError(f"{spec.name}: a pipeline-wide rollback changes what consumers read: {changes}; "
                                     "pass --yes to do exactly that", retryable=False)
        console.print(f"pipeline-wide rollback: {changes}", highlight=False)
        if not typer.confirm("Roll back the whole pipeline?", default=False):
            raise CertificationError(f"{spec.name}: pipeline-wide rollback not confirmed: nothing recorded",
                                     retryable=False)
    if spec.governance is not None or via == "airflow":
        request_decision(spec, "rollback", via=via, airflow_url=airflow_url, json_=json_, root=root, reason=reason,
                         to=to, replacing=replacing, scope=scope)
        return
    me = local_principal(spec, "rollback")
    d = rollback(spec, to, reason=reason, root=root, replacing=replacing, who=me.identity, scope=scope)
    if json_:
        print_json(_decision_json(d))
    else:
        console.print(f"rolled back{' pipeline-wide' if pipeline_wide else ''}: {_decision_line(d)}")
        revoked = d.bindings["reviewed"]["revokes"]
        if revoked:
            console.print(f"no longer in force: {', '.join(revoked)}", highlight=False)
    _alert(spec, d)


@command("override")
def override_cmd(
    pipeline: PipelineArg,
    date_: DateOpt,
    reason: Annotated[str, typer.Option("--reason", help="why: recorded with the decision")],
    generation: Annotated[str, typer.Option(
        "--generation", help="the blocked generation you reviewed (`lockstep explain` shows its id)")],
    until: Annotated[str | None, typer.Option("--until", help="expiry, ISO time (UTC unless it says)")] = None,
    reinstate_older: Annotated[bool, typer.Option(
        "--reinstate-older", help="override a block although a newer certification of the interval exists")] = False,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Certify an interval despite its block (a new audited decision), optionally until a time.

    On a governed spec (or --via airflow) this records a request that takes effect with the
    approvals the spec requires (`lockstep approve`)."""
    from pipelines.certify import override
    from pipelines.errors import CertificationError
    from pipelines.governance import local_principal
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    expiry = None
    if until:
        try:
            expiry = datetime.fromisoformat(until)
        except ValueError:
            raise CertificationError(f"--until: expected an ISO time, got {until!r}") from None
        expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
    interval = _interval(spec, date_)
    if spec.governance is not None or via == "airflow":
        request_decision(spec, "override", via=via, airflow_url=airflow_url, json_=json_, root=root, reason=reason,
                         interval=interval.key, generation=generation, until=expiry, reinstate_older=reinstate_older)
        return
    me = local_principal(spec, "override")
    d = override(spec, interval, reason=reason, generation=generation, until=expiry, root=root,
                 reinstate_older=reinstate_older, who=me.identity)
    if json_:
        print_json(_decision_json(d))
    else:
        console.print(f"overridden: {_decision_line(d)} despite {len(d.reasons)} blocking reason(s)")
    _alert(spec, d)


def _alert(spec: Any, decision: Any) -> None:
    """Tell the spec's alert targets about an operator's decision, once recorded; a delivery
    failure leaves the decision in force but fails the command (exit 1), naming the target."""
    if not spec.alerts:
        return
    from pipelines.airflow.alerts import after_decision  # Airflow only when the spec has targets

    errors = after_decision(spec, decision)
    if errors:
        err_console.print(f"error: {decision.kind} recorded, but {len(errors)} alert(s) failed: " + "; ".join(errors))
        raise typer.Exit(1)


def _names(values: list[str] | None) -> list[str]:
    """Column names given repeated and/or comma-separated, in order, each once."""
    return list(dict.fromkeys(n.strip() for v in values or [] for n in v.split(",") if n.strip()))


@command("diff")
def diff_cmd(
    uri_a: Annotated[str, typer.Argument(help="table A: Delta table, parquet file or folder")],
    uri_b: Annotated[str, typer.Argument(help="table B")],
    key: Annotated[list[str], typer.Option("--key", help="key column(s): comma-separated or repeated")],
    columns: Annotated[list[str] | None, typer.Option("--columns", help="compare only these: comma-separated "
                                                      "or repeated")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="write every differing key with its kind (parquet)")] = None,
    json_: JsonOpt = False,
) -> None:
    """Compare two tables by key. Exit 0 when they match, 1 when they differ, 2 on an error."""
    from pipelines.reconcile.diff import diff

    keys = _names(key)
    cols = _names(columns) or None
    result = diff(uri_a, uri_b, keys=keys, columns=cols)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        result.keys_frame().write_parquet(output)
    js = result.as_json()
    if json_:
        print_json(js)
    else:
        state = "[green]tables match[/]" if result.equal else "[red]tables differ[/]"
        console.print(f"{state}: A {js['rows_a']:,} rows, B {js['rows_b']:,} rows; only in A {js['only_in_a']:,}, "
                      f"only in B {js['only_in_b']:,}, changed {js['changed']:,}")
        if js["changed_columns"]:
            console.print(f"changed columns: {js['changed_columns']}", highlight=False)
        for kind in ("only_in_a", "only_in_b", "changed"):
            if js["samples"][kind]:
                console.print(f"{kind} (first {len(js['samples'][kind])}): {js['samples'][kind]}", highlight=False)
        if js["columns_only_in_a"] or js["columns_only_in_b"]:
            err_console.print(f"columns only in A: {js['columns_only_in_a']}, only in B: {js['columns_only_in_b']}")
        if output is not None:
            console.print(f"wrote {result.keys_frame().height:,} differing keys to {output}")
    if not result.equal:
        raise typer.Exit(1)
