"""``lockstep release train|shadow|evaluate|promote|rollback|list|history|show|evaluations`` and
``lockstep score``: certified model releases.

A release puts one registered model version in force in every region from one interval on;
the log is Lockstep's (an ordered control table), MLflow's ``champion`` alias only mirrors
it. A promotion passes the promotion gate or is refused, and the refusal recorded, with every
reason. Each command prints a table, or one JSON document with ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
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
from pipelines.cli.tables import show_table

F = TypeVar("F", bound=Callable[..., Any])

release_app = typer.Typer(help="Train, promote and roll back the model certified data feeds.", no_args_is_help=True)
app.add_typer(release_app, name="release")

WhyOpt = Annotated[str, typer.Option("--why", help="why (recorded in the release)")]
FromOpt = Annotated[str | None, typer.Option(
    "--effective-from", help="the interval the release is in force from (default: the next one no region has scored)")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="the evaluation window's last interval (default: the newest decided interval)")]


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
    table = Table("release", "kind", "model", "version", "feature version", "effective from", "replaces", "who", "why")
    for r in rows:
        why = r.why if r.kind != "refused" else f"{r.why} (refused: {len(r.reasons)} reason(s))"
        table.add_row(r.release_id, r.kind + (f" to {r.target}" if r.kind == "rollback" else ""), r.model_name,
                      r.model_version, r.feature_version, r.effective_from, r.replaces, escape(r.who), escape(why))
    show_table(console, table)


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


@_command("history")
def history_cmd(pipeline: PipelineArg, root: RootOpt = None, json_: JsonOpt = False) -> None:
    """Every release decision, refused promotions included, in commit order."""
    from pipelines.models import history

    _show(history(_spec(pipeline), root=root), json_)


@_command("shadow")
def shadow_cmd(
    pipeline: PipelineArg,
    version: Annotated[str, typer.Argument(help="the candidate's registered model version")],
    date_: Annotated[str, typer.Option("--date", help="the certified interval to shadow-score")],
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Shadow-score a candidate beside the release in force on a certified interval (recorded
    in release_evaluations, the promotion gate's evidence)."""
    from pipelines.models import shadow_score

    spec = _spec(pipeline)
    rows = [shadow_score(spec, version, date_, name, root=root) for name in region or spec.regions]
    if json_:
        print_json(rows)
        return
    table = Table("region", "interval", "rows", "positives", "roc auc", "in force", "its roc auc", "psi")
    for r in rows:
        table.add_row(r["region"], r["interval"], str(r["rows"]), str(r["positives"]), _num(r["roc_auc"]),
                      str(r["baseline_release"] or "-"), _num(r["baseline_roc_auc"]), _num(r["psi"]))
    show_table(console, table)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


@_command("evaluate")
def evaluate_cmd(
    pipeline: PipelineArg,
    version: Annotated[str, typer.Argument(help="the candidate's registered model version")],
    until: UntilOpt = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The promotion gate's verdict on a candidate, without promoting it: every reason."""
    from pipelines.models import evaluate_promotion

    ev = evaluate_promotion(_spec(pipeline), version, until=until, root=root)
    if json_:
        print_json(ev.to_json())
        return
    console.print(f"version {ev.version}: {'admitted' if ev.admitted else 'refused'} over {ev.window[0] if ev.window else '-'}"
                  f"..{ev.window[-1] if ev.window else '-'} (in force: {ev.baseline or 'none'})")
    for r in ev.reasons:
        console.print(f"  {r['check_id']}: {r['message']}", highlight=False, markup=False)


@_command("evaluations")
def evaluations_cmd(
    pipeline: PipelineArg,
    version: Annotated[str | None, typer.Option("--version", help="only this candidate's")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The shadow evaluations recorded, oldest first."""
    from pipelines.models import evaluations

    frame = evaluations(_spec(pipeline), version=version, root=root)
    if json_:
        print_json(frame.to_dicts())
        return
    table = Table("version", "region", "interval", "rows", "roc auc", "in force", "its roc auc", "psi")
    for r in frame.iter_rows(named=True):
        table.add_row(r["model_version"], r["region"], r["interval"], str(r["rows"]), _num(r["roc_auc"]),
                      str(r["baseline_release"] or "-"), _num(r["baseline_roc_auc"]), _num(r["psi"]))
    show_table(console, table)


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
    why: WhyOpt,
    effective_from: FromOpt = None,
    until: UntilOpt = None,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Release a model version in every region through the promotion gate (a refusal is
    recorded and named with every reason), from the next unscored interval (or --effective-from).

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
    _show([promote(spec, version, effective_from=effective_from, why=why, until=until, root=root, who=me.identity)],
          json_)


@_command("rollback")
def rollback_cmd(
    pipeline: PipelineArg,
    why: WhyOpt,
    to: Annotated[str | None, typer.Option("--to", help="the release to put back (default: the one before)")] = None,
    effective_from: FromOpt = None,
    via: ViaOpt = "local",
    airflow_url: AirflowUrlOpt = DEFAULT_URL,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Load-check an earlier release's model, then make it in force again from the next
    unscored interval (or --effective-from); audited: who, why, from, to.

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
    release: Annotated[str | None, typer.Option("--release", help="replay with this release (nothing written)")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Score an interval's certified features in every region with the one release it is
    scored with (claimed by its first scorer) and write the region's scores table; or replay
    it with --release, writing nothing. Prints rows, release, model version and the hash of
    the score column."""
    from pipelines.models import score, score_hash, write_scores

    spec = _spec(pipeline)
    out = []
    for name in region or spec.regions:
        frame = score(spec, date_, name, release=release, root=root)
        written = None if release else write_scores(spec, frame, root=root)
        ids = frame["release_id"].unique().to_list()
        out.append({"region": name, "interval": spec.interval_at(date_).key, "rows": frame.height,
                    "release_id": ids[0] if ids else release, "model_version": frame["model_version"].unique().to_list(),
                    "score_hash": score_hash(frame), "written_version": written.version if written else None})
    if json_:
        print_json(out)
        return
    table = Table("region", "interval", "rows", "release", "score hash", "written")
    for row in out:
        table.add_row(row["region"], row["interval"], str(row["rows"]), str(row["release_id"]), row["score_hash"][:16],
                      "-" if row["written_version"] is None else f"version {row['written_version']}")
    show_table(console, table)
