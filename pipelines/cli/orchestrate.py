"""Orchestration commands: backfill (locally or through a running Airflow) and airflow up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.core import _decision_cell, _parse_date, _progress

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
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a range of intervals in order; intervals already certified and unchanged are skipped."""
    from pipelines.backfill import plan_backfill, run_backfill
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    first, last = _parse_date(start), _parse_date(end)
    if via == "airflow":
        _backfill_via_airflow(spec.name, first.isoformat(), last.isoformat(), airflow_url, dry_run, json_)
        return
    if via != "local":
        from pipelines.errors import SpecError

        raise SpecError(f"--via: expected local or airflow, got {via!r}")
    if dry_run:
        plan = plan_backfill(spec, first, last, root=root)
        rows = [{"interval": p.interval.key, "status": p.status, "why": p.why} for p in plan]
        if json_:
            print_json(rows)
        else:
            table = Table(title=f"backfill plan: {spec.name}")
            for col in ("interval", "status", "why"):
                table.add_column(col)
            for r in rows:
                table.add_row(r["interval"], r["status"], r["why"])
            console.print(table)
        return
    results: list[dict[str, Any]] = []
    table = Table(title=f"backfill {spec.name} {first} .. {last}")
    for col in ("interval", "action", "seconds", "decision"):
        table.add_column(col)
    n = (last - first).days + 1
    with _progress() as progress:
        task = progress.add_task(f"backfill {spec.name}", total=n, visible=not json_)

        def on_interval(planned: Any, run: Any) -> None:
            progress.advance(task)
            if run is None:
                results.append({"interval": planned.interval.key, "action": "skipped", "why": planned.why})
                table.add_row(planned.interval.key, "[dim]nothing to do[/]", "-", planned.why)
            else:
                results.append({"action": "ran", **run.summary()})
                table.add_row(planned.interval.key, "ran", f"{run.seconds:.2f}", _decision_cell(run))

        ran = run_backfill(spec, first, last, regions=region, root=root, on_interval=on_interval)
    if json_:
        print_json(results)
    else:
        console.print(table)
        todo = sum(run is not None for _, run in ran)
        console.print("nothing to do: every interval is certified and unchanged" if todo == 0
                      else f"ran {todo} of {len(ran)} intervals")
    if any(run is not None and run.decision is not None and not run.decision.certified for _, run in ran):
        raise typer.Exit(1)


def _backfill_via_airflow(dag_id: str, start: str, end: str, url: str, dry_run: bool, json_: bool) -> None:
    from pipelines.airflow.client import AirflowClient

    client = AirflowClient.from_env(url)
    if dry_run:
        plan = client.backfill_dry_run(dag_id, start, end)
        print_json(plan) if json_ else console.print(plan)
        return
    with _progress() as progress:
        task = progress.add_task(f"airflow backfill {dag_id}", total=None, visible=not json_)
        backfill = client.create_backfill(dag_id, start, end)
        runs = client.wait_for_backfill(backfill, on_poll=lambda runs: progress.update(
            task, total=len(runs), completed=sum(r["state"] in ("success", "failed") for r in runs)))
    if json_:
        print_json({"backfill": backfill, "runs": runs})
    else:
        table = Table(title=f"airflow backfill {backfill['id']} of {dag_id}")
        for col in ("run", "logical date", "state"):
            table.add_column(col)
        for r in runs:
            table.add_row(r["dag_run_id"], str(r.get("logical_date")), r["state"])
        console.print(table)
    if any(r["state"] != "success" for r in runs):
        raise typer.Exit(1)


@airflow_app.command("up")
def airflow_up(
    port: Annotated[int, typer.Option(help="api-server port on 127.0.0.1")] = 8080,
    home: Annotated[Path, typer.Option(help="AIRFLOW_HOME for the embedded Airflow")] = Path(".airflow"),
    root: RootOpt = None,
) -> None:
    """Start Airflow 3 (SQLite, LocalExecutor) with this project's dags/ and plugins/; Ctrl-C stops it."""
    from pipelines.airflow.local import up

    if root:
        os.environ["LOCKSTEP_ROOT"] = root
    up(port=port, home=home)


from pipelines.cli import app  # noqa: E402

app.add_typer(airflow_app, name="airflow")
