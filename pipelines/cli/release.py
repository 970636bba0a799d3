"""``lockstep release train|list|show|promote|rollback`` and ``lockstep score``: certified model releases.

A release puts one registered model version in force in every region from one interval on;
the log is Lockstep's (an ordered control table), MLflow's ``champion`` alias only mirrors
it. Each command prints a table, or one JSON document with ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from pipelines.cli import (
    JsonOpt,
    PipelineArg,
    RootOpt,
    app,
    command,
    console,
    handle_errors,
    print_json,
)
from pipelines.cli.govern import DEFAULT_URL, AirflowUrlOpt, ViaOpt, request_decision

F = TypeVar("F", bound=Callable[..., Any])

release_app = typer.Typer(help="Train, promote and roll back the model certified data feeds.", no_args_is_help=True)
app.add_typer(release_app, name="release")

WhyOpt = Annotated[str, typer.Option("--why", help="why (recorded in the release)")]
FromOpt = Annotated[str, typer.Option("--effective-from", help="the interval the release is in force from")]


def _command(name: str) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        release_app.command(name)(handle_errors(fn, f"release {name}"))
        return fn

    return deco


def _spec(pipeline: str) -> Any:
    from pipelines.spec import load_spec

    return load_spec(pipeline)


def _show(rows: list[Any], json_: bool) -> None:
    if json_:
        print_json([r.to_json() for r in rows])
        return
    table = Table("release", "kind", "model", "version", "feature version", "effective from", "who", "why")
    for r in rows:
        table.add_row(r.release_id, r.kind, r.model_name, r.model_version, r.feature_version, r.effective_from,
                      r.who, r.why)
    console.print(table)


@_command("train")
def train_cmd(
    pipeline: PipelineArg,
    until: Annotated[str, typer.Option("--until", help="the window's last interval")],
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="an interval left out (repeatable)")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Train and register the spec's model on its certified window ending with --until."""
    from dataclasses import asdict

    from pipelines.models import train

    trained = train(_spec(pipeline), until=until, exclude=exclude, root=root)
    if json_:
        print_json(asdict(trained))
        return
    console.print(f"registered {trained.name} version {trained.version} (feature version {trained.feature_version}, "
                  f"trained on {', '.join(trained.generations.values())})")


@_command("list")
def list_cmd(pipeline: PipelineArg, root: RootOpt = None, json_: JsonOpt = False) -> None:
    """Every release, in commit order."""
    from pipelines.models import releases

    _show(releases(_spec(pipeline), root=root), json_)


@_command("show")
def show_cmd(
    pipeline: PipelineArg,
    interval: Annotated[str, typer.Option("--interval", help="the interval whose release in force to show")],
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The release in force for an interval."""
    from pipelines.errors import CertificationError
    from pipelines.models import release_in_force

    spec = _spec(pipeline)
    found = release_in_force(spec, interval, root=root)
    if found is None:
        raise CertificationError(f"{spec.name}: no release in force for {interval}", retryable=False)
    _show([found], json_)


@_command("promote")
def promote_cmd(
    pipeline: PipelineArg,
    version: Annotated[str, typer.Argument(help="the registered model version")],
    effective_from: FromOpt,
    why: WhyOpt,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Release a model version in every region from --effective-from on (refused with every reason).

    On a governed spec (or --via airflow) this records a request that takes effect with the
    approvals the spec requires (`lockstep approve`)."""
    from pipelines.governance import local_principal
    from pipelines.models import promote

    spec = _spec(pipeline)
    if spec.governance is not None or via == "airflow":
        request_decision(spec, "release", via=via, airflow_url=airflow_url, json_=json_, root=root, reason=why,
                         kind="promote", version=version, effective_from=effective_from)
        return
    me = local_principal(spec, "release")
    _show([promote(spec, version, effective_from=effective_from, why=why, root=root, who=me.identity)], json_)


@_command("rollback")
def rollback_cmd(
    pipeline: PipelineArg,
    to: Annotated[str, typer.Option("--to", help="the earlier release to put back in force")],
    effective_from: FromOpt,
    why: WhyOpt,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Load-check an earlier release's model, then make it in force again from --effective-from on.

    On a governed spec (or --via airflow) this records a request (`lockstep approve`)."""
    from pipelines.governance import local_principal
    from pipelines.models import rollback

    spec = _spec(pipeline)
    if spec.governance is not None or via == "airflow":
        request_decision(spec, "release", via=via, airflow_url=airflow_url, json_=json_, root=root, reason=why,
                         kind="rollback", to=to, effective_from=effective_from)
        return
    me = local_principal(spec, "release")
    _show([rollback(spec, to=to, effective_from=effective_from, why=why, root=root, who=me.identity)], json_)


@command("score")
def score_cmd(
    pipeline: PipelineArg,
    date_: Annotated[str, typer.Option("--date", help="the interval to score")],
    release: Annotated[str | None, typer.Option("--release", help="replay with this release (default: the one in force)")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Score an interval's certified features in every region with the release in force for it
    (or --release): rows, release and model version, and the hash of the score column."""
    from pipelines.models import score, score_hash

    spec = _spec(pipeline)
    out = []
    for name in region or spec.regions:
        frame = score(spec, date_, name, release=release, root=root)
        ids = frame["release_id"].unique().to_list()
        out.append({"region": name, "interval": spec.interval_at(date_).key, "rows": frame.height,
                    "release_id": ids[0] if ids else release, "model_version": frame["model_version"].unique().to_list(),
                    "score_hash": score_hash(frame)})
    if json_:
        print_json(out)
        return
    table = Table("region", "interval", "rows", "release", "score hash")
    for row in out:
        table.add_row(row["region"], row["interval"], str(row["rows"]), str(row["release_id"]), row["score_hash"][:16])
    console.print(table)
