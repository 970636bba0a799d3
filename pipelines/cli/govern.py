"""Governed decisions: ``lockstep approve``, ``lockstep requests``, and the request an override
or a rollback becomes on a governed spec.

On a spec with a ``governance`` section, ``lockstep override`` and ``lockstep rollback``
record a *request* (the decision takes effect once ``governance.approvals`` other people
approved it with ``lockstep approve``). ``--via local`` (the default) acts directly on storage
as ``local:<user>``, refused where ``governance.allow_local`` is off; ``--via airflow`` calls
the Lockstep plugin's API of a running Airflow, signed in with ``LOCKSTEP_AIRFLOW_USERNAME`` /
``LOCKSTEP_AIRFLOW_PASSWORD``: the decision records the user Airflow's auth manager verified.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.tables import show_table

ViaOpt = Annotated[str, typer.Option(
    "--via", help="local: directly on storage (as local:<user>, where the spec allows it); airflow: through the "
    "Lockstep API of a running Airflow, as the user it verified")]
AirflowUrlOpt = Annotated[str, typer.Option(envvar="LOCKSTEP_AIRFLOW_URL", help="Airflow api-server (--via airflow)")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _via(value: str) -> str:
    if value not in ("local", "airflow"):
        from pipelines.errors import SpecError

        raise SpecError(f"--via: expected local or airflow, got {value!r}")
    return value


def _client(url: str) -> Any:
    from pipelines.airflow.client import AirflowClient

    return AirflowClient.from_env(url)


def _show_request(req: dict[str, Any], json_: bool, ref: str | None = None) -> None:
    if json_:
        print_json(req)
        return
    state = req["state"]
    approvals = [a["who"] for a in req.get("approvals") or []]
    what = {"rollback": f"rollback of {req['interval']} to {req['generation_id']}",
            "override": f"override of {req['interval']} (blocked generation {req['generation_id']})",
            "release": f"release {req['params'].get('kind')} of {req['generation_id']} from {req['interval']}",
            }.get(req["action"], req["action"])
    console.print(f"{req['request_id']} [{state}] {what}, requested by {req['requester']}; regions "
                  f"{', '.join(req['regions'])}; approvals: {', '.join(approvals) or 'none'}", highlight=False)
    if state == "decided":
        console.print(f"decided: {req['decision_id']}", highlight=False)
    elif state == "pending":
        console.print(f"pending: approve with `lockstep approve {ref or req['pipeline']} {req['request_id']} --reason ...` "
                      f"(a distinct approver of {', '.join(req['regions'])})", highlight=False)


def request_decision(spec: Any, action: str, *, via: str, airflow_url: str, json_: bool, root: str | None,
                     **fields: Any) -> None:
    """Record a request for ``action`` (override, rollback or release): on storage, or through Airflow."""
    if _via(via) == "airflow":
        body = {"action": action, **{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in fields.items()}}
        _show_request(_client(airflow_url).request_decision(spec.name, body), json_, spec.command_ref)
        return
    from pipelines.governance import local_principal, submit

    me = local_principal(spec, f"request an {action}", command=f"lockstep {action} {spec.name} ...")
    _show_request(submit(spec, me, action=action, root=root, **fields).as_json(), json_, spec.command_ref)


@command("approve")
def approve_cmd(
    pipeline: PipelineArg,
    request_id: Annotated[str, typer.Argument(help="the request (`lockstep requests` lists them)")],
    reason: Annotated[str, typer.Option("--reason", help="why: recorded with the approval")],
    reject: Annotated[bool, typer.Option("--reject", help="refuse the request (closes it)")] = False,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Approve (or --reject) a request for an override or a rollback; with the approvals the
    spec requires, the decision is recorded. Self-approval, a second approval by the same
    person, an approver of another region, a changed generation and an expired request are refused."""
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    if _via(via) == "airflow":
        _show_request(_client(airflow_url).approve_request(spec.name, request_id, reason=reason, reject=reject), json_,
                      spec.command_ref)
        return
    from pipelines.governance import approve, local_principal

    me = local_principal(spec, "approve", command=f"lockstep approve {spec.command_ref} {request_id} ...")
    req, _ = approve(spec, me, request_id, reason=reason, reject=reject, root=root)
    _show_request(req.as_json(), json_, spec.command_ref)


@command("requests")
def requests_cmd(
    pipeline: PipelineArg,
    all_: Annotated[bool, typer.Option("--all", help="closed requests too (decided, rejected, expired)")] = False,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Requests for overrides and rollbacks, with their approvals (pending ones unless --all)."""
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    if _via(via) == "airflow":
        rows = _client(airflow_url).decision_requests(spec.name)
    else:
        from pipelines.governance import requests

        rows = [r.as_json() for r in requests(spec, root=root)]
    rows = [r for r in rows if all_ or r["state"] == "pending"]
    if json_:
        print_json(rows)
        return
    table = Table(title=f"requests: {spec.name}")
    for col in ("request", "state", "action", "interval", "generation", "requester", "regions", "approvals"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["request_id"], r["state"], r["action"], r["interval"], r["generation_id"], r["requester"],
                      ", ".join(r["regions"]), ", ".join(a["who"] for a in r.get("approvals") or []))
    show_table(console, table)


@command("audit")
def audit_cmd(
    pipeline: PipelineArg,
    date_: Annotated[str | None, typer.Option("--date", help="only decisions made on this UTC day, YYYY-MM-DD")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Export the audit trail: one OpenLineage RunEvent per decision (gate, override, rollback,
    request, approval, release) not exported before, through the transport Airflow's
    OpenLineage provider is configured with (AIRFLOW__OPENLINEAGE__TRANSPORT)."""
    from pipelines.airflow.audit import export_audit
    from pipelines.cli.dates import parse_day
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    sent = export_audit(spec, root=root, day=parse_day(date_, "--date") if date_ else None)
    if json_:
        print_json({"exported": sent})
        return
    console.print(f"{spec.name}: exported {len(sent)} decision(s) as OpenLineage events"
                  + (f" ({', '.join(sorted({r['log'] for r in sent}))})" if sent else ": nothing new"), highlight=False)
