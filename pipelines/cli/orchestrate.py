"""Orchestration commands: backfill (locally or through a running Airflow) and airflow up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, handle_errors, print_json
from pipelines.cli.core import Steps, _decision_cell, _progress
from pipelines.cli.dates import AllowOpenOpt, parse_day, parse_interval
from pipelines.cli.tables import show_table

airflow_app = typer.Typer(help="Run Airflow 3 locally with this project's DAGs.", no_args_is_help=True)


@command("backfill")
def backfill_cmd(
    pipeline: PipelineArg,
    start: Annotated[str, typer.Option("--start", help="first interval date, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="last interval date (included)")],
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    via: Annotated[str, typer.Option("--via", help="local: the core runner here; airflow: a running Airflow")] = "local",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan, run nothing")] = False,
    airflow_url: Annotated[str, typer.Option(envvar="LOCKSTEP_AIRFLOW_URL", help="Airflow api-server")] = "http://127.0.0.1:8080",
    unpause: Annotated[bool, typer.Option("--unpause", help="--via airflow: unpause the DAG if it is paused "
                                          "(it then follows its schedule too)")] = False,
    allow_open: AllowOpenOpt = False,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a range of intervals in order; intervals already certified and unchanged are skipped.

    Every interval must have closed plus the late allowance (else --allow-open, --via local)."""
    from pipelines.backfill import plan_backfill, run_backfill
    from pipelines.preflight import check_regions
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    check_regions(spec, region)
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    for option, value in (("--start", start), ("--end", end)):
        parse_interval(spec, value, option)  # a day no interval can represent: one line with the valid range
    if via == "airflow":
        _backfill_via_airflow(spec.name, first.isoformat(), last.isoformat(), airflow_url, dry_run, json_, unpause)
        return
    if via != "local":
        from pipelines.errors import SpecError

        raise SpecError(f"--via: expected local or airflow, got {via!r}")
    if not dry_run:  # each interval's gate decides: on storage, only where the spec's governance allows it
        from pipelines.governance import local_principal

        local_principal(spec, "certify", command=f"lockstep backfill {pipeline} --start {start} --end {end}")
    if dry_run:
        plan = plan_backfill(spec, first, last, root=root, allow_open=allow_open)
        rows = [{"interval": p.interval.key, "status": p.status, "why": p.why} for p in plan]
        if json_:
            print_json(rows)
        else:
            table = Table(title=f"backfill plan: {spec.name}")
            for col in ("interval", "status", "why"):
                table.add_column(col)
            for r in rows:
                table.add_row(r["interval"], r["status"], escape(r["why"]))
            show_table(console, table)
        return
    results: list[dict[str, Any]] = []
    table = Table(title=f"backfill {spec.name} {first} .. {last}")
    for col in ("interval", "action", "seconds", "decision"):
        table.add_column(col)
    n = (last - first).days + 1
    with Steps(f"backfill {spec.name}", n, quiet=json_) as progress:
        def on_step(interval: Any, region: str, step: str) -> None:
            progress.step(f"{interval.key} {'all regions' if region == '*' else region}", step)

        def on_interval(planned: Any, run: Any) -> None:
            progress.advance(planned.interval.key + (": nothing to do" if run is None else ""))
            if run is None:
                results.append({"interval": planned.interval.key, "action": "skipped", "why": planned.why})
                table.add_row(planned.interval.key, "[dim]nothing to do[/]", "-", escape(planned.why))
            else:
                results.append({"action": "ran", **run.summary()})
                table.add_row(planned.interval.key, "ran", f"{run.seconds:.2f}", _decision_cell(run))

        ran = run_backfill(spec, first, last, regions=region, root=root, on_interval=on_interval,
                           allow_open=allow_open, on_step=on_step)
    if json_:
        print_json(results)
    else:
        show_table(console, table)
        todo = sum(run is not None for _, run in ran)
        console.print("nothing to do: every interval is certified and unchanged" if todo == 0
                      else f"ran {todo} of {len(ran)} intervals")
    if any(run is not None and run.decision is not None and not run.decision.certified for _, run in ran):
        raise typer.Exit(1)


FINISHED_TI = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


@command("notify")
def notify_cmd(
    pipeline: PipelineArg,
    interval: Annotated[list[str] | None, typer.Option("--interval", help="interval key(s) delivered (repeatable); "
                                                      "none: the landing DAG searches its lookback")] = None,
    airflow_url: Annotated[str, typer.Option(envvar="LOCKSTEP_AIRFLOW_URL", help="Airflow api-server")] = "http://127.0.0.1:8080",
    json_: JsonOpt = False,
) -> None:
    """Tell a running Airflow that files landed (a pipeline under `airflow.trigger: landing`):
    one asset event on lockstep://<pipeline>/landing; repeating it is harmless."""
    from datetime import UTC, datetime

    from pipelines.airflow.client import AirflowClient
    from pipelines.errors import SpecError
    from pipelines.landing import ready
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    if spec.airflow.trigger != "landing":
        raise SpecError(f"{spec.name}: airflow.trigger is {spec.airflow.trigger!r}; notifications start runs only "
                        "under `trigger: landing`")
    keys = [spec.interval_at(k).key for k in interval or []]
    landed = ready(spec, now=datetime.now(UTC), intervals=keys)
    event = AirflowClient.from_env(airflow_url).notify_landing(spec.name, keys)
    out = {"asset_event_id": event.get("id"), "intervals": keys,
           "landed_now": [{"interval": x.interval.key, "run_id": x.run_id} for x in landed]}
    if json_:
        print_json(out)
    else:
        console.print(f"notified {spec.name}'s landing DAG (asset event {out['asset_event_id']}); landed now: "
                      f"{', '.join(x.interval.key for x in landed) or 'nothing'}")


def _backfill_via_airflow(dag_id: str, start: str, end: str, url: str, dry_run: bool, json_: bool,
                          unpause: bool = False) -> None:
    """Backfill through Airflow's REST API: only the runs this backfill creates, followed
    task instance by task instance; a range with nothing left to run creates no backfill."""
    from datetime import date

    from pipelines.airflow.client import AirflowClient, AirflowError

    client = AirflowClient.from_env(url)
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    # intervals without a successful run (a failed one is re-run), one run at a time
    plan = client.backfill(dag_id, first, last, reprocess_behavior="failed", max_active_runs=1, dry_run=True)
    todo = sorted(str(b["logical_date"]) for b in plan.get("backfills", []) if b.get("logical_date"))
    if dry_run:
        if json_:
            print_json(plan)
        else:
            console.print(f"would run {len(todo)} interval(s) of {dag_id}: {', '.join(todo) or 'none'}")
        return
    if not todo:
        if json_:
            print_json({"backfill": None, "runs": []})
        else:
            console.print(f"nothing to do: every interval of {dag_id} from {start} to {end} already has a "
                          "successful run in Airflow")
        return
    paused = bool(client.dag(dag_id).get("is_paused"))
    if paused and not unpause:
        raise AirflowError(f"{dag_id} is paused in Airflow, so a backfill would never start: unpause it "
                           "(UI, or `airflow dags unpause`) or pass --unpause", retryable=False)
    with _progress() as progress:
        bar = progress.add_task(f"{dag_id}: starting {len(todo)} run(s)", total=None, visible=not json_)
        backfill = client.backfill(dag_id, first, last, reprocess_behavior="failed", max_active_runs=1)
        if paused:  # after the backfill holds its intervals: the scheduler does not run them twice
            client.set_paused(dag_id, False)
        runs = _follow_backfill(client, backfill, set(todo), lambda done, total, what: progress.update(
            bar, completed=done, total=total or None, description=f"{dag_id}: {what}"))
    if json_:
        print_json({"backfill": backfill, "runs": runs})
    else:
        table = Table(title=f"airflow backfill {backfill['id']} of {dag_id}")
        for col in ("run", "logical date", "state", "tasks"):
            table.add_column(col)
        for r in runs:
            colour = {"success": "green", "failed": "red"}.get(r["state"], "yellow")
            table.add_row(r["dag_run_id"], str(r.get("logical_date")), f"[{colour}]{r['state']}[/]",
                          r.get("tasks", ""))
        show_table(console, table)
        console.print(f"ran {len(runs)} run(s); {sum(r['state'] == 'success' for r in runs)} succeeded")
    if any(r["state"] != "success" for r in runs):
        raise typer.Exit(1)


def _follow_backfill(client: Any, backfill: dict[str, Any], logical_dates: set[str],
                     on_progress: Any, *, timeout: float = 6 * 3600, poll: float = 2.0) -> list[dict[str, Any]]:
    """Follow the runs of ``backfill`` (those at ``logical_dates``: the runs it created, never
    an earlier backfill's) until it completes; each run with ``tasks``, its finished/total
    task instances. ``on_progress(done, total, what)`` hears task instances as they finish."""
    import time

    from pipelines.airflow.client import AirflowError

    dag_id = backfill["dag_id"]
    deadline = time.monotonic() + timeout
    settled: dict[str, list[dict[str, Any]]] = {}  # task instances of finished runs: not asked again
    while True:
        completed = bool(client.backfill_state(backfill["id"]).get("completed_at"))
        listed = client.dag_runs(dag_id, logical_date_gte=backfill["from_date"],
                                 logical_date_lte=backfill["to_date"], limit=1000)
        runs = [r for r in listed if r.get("run_type") == "backfill" and _same_instant(r.get("logical_date"), logical_dates)]
        done = total = 0
        running: list[str] = []
        for r in runs:
            tis = settled.get(r["dag_run_id"]) or client.task_instances(dag_id, r["dag_run_id"])
            if r["state"] in ("success", "failed"):
                settled[r["dag_run_id"]] = tis
            finished = sum(t.get("state") in FINISHED_TI for t in tis)
            r["tasks"] = f"{finished}/{len(tis)}"
            done, total = done + finished, total + len(tis)
            running += [t["task_id"] if t.get("map_index") in (None, -1)
                        else f"{t['task_id']}[{t.get('rendered_map_index') or t['map_index']}]"
                        for t in tis if t.get("state") == "running"]
        finished_runs = sum(r["state"] in ("success", "failed") for r in runs)
        what = f"{finished_runs}/{len(logical_dates)} run(s)" + (f" · running {', '.join(running[:3])}" if running else "")
        on_progress(done, total, what)
        if completed and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise AirflowError(f"backfill {backfill['id']} of {dag_id} not done after {timeout:.0f}s")
        time.sleep(poll)


def _same_instant(value: Any, wanted: set[str]) -> bool:
    from datetime import datetime

    if not value:
        return False
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return any(datetime.fromisoformat(w.replace("Z", "+00:00")) == at for w in wanted)


def airflow_up(
    port: Annotated[int, typer.Option(help="api-server port on 127.0.0.1")] = 8080,
    home: Annotated[Path, typer.Option(help="AIRFLOW_HOME for the embedded Airflow")] = Path(".airflow"),
    root: RootOpt = None,
    auth: Annotated[str, typer.Option(help="the auth manager: simple (one admin) or fab (users and roles "
                                            "from --users)")] = "simple",
    users: Annotated[Path | None, typer.Option(help="FAB users file (YAML: users with roles, the roles "
                                                    "named as the specs' governance names them)")] = None,
) -> None:
    """Start Airflow 3 (SQLite, LocalExecutor) with this project's dags/ and plugins/; Ctrl-C stops it.

    Data goes where the CLI reads it (the specs' storage roots, or --root); new DAGs start
    paused, so nothing runs until you unpause a DAG or backfill a range."""
    import time

    from pipelines.airflow.embedded import up
    from pipelines.errors import SpecError

    if auth not in ("simple", "fab"):
        raise SpecError(f"--auth: expected simple or fab, got {auth!r}")
    if users is not None and auth != "fab":
        raise SpecError("--users: a users file is for the FAB auth manager; add --auth fab")
    status = console.status("starting Airflow ...")
    started = time.monotonic()

    def progress(phase: str) -> None:
        line = f"starting Airflow: {phase} ({time.monotonic() - started:.0f}s)"
        if phase == "healthy":
            status.stop()
        elif console.is_terminal:
            status.update(line)
            status.start()
        else:  # a log, not a terminal: one line per phase
            console.print(line, highlight=False, soft_wrap=True)

    code = up(port=port, home=home, root=root, out=lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True),
              progress=progress, auth="fab" if auth == "fab" else "simple", users_file=users)
    status.stop()
    if code:
        raise typer.Exit(code)


airflow_app.command("up")(handle_errors(airflow_up, "airflow up"))


from pipelines.cli import app  # noqa: E402

app.add_typer(airflow_app, name="airflow")
