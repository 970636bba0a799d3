"""Core commands: run, demo, status, generate, bench."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.cli import JsonOpt, PipelineArg, RootOpt, command, console, print_json
from pipelines.cli.dates import AllowOpenOpt, parse_day, parse_interval
from pipelines.cli.tables import show_table


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )


class Steps:
    """Progress of long CLI work, by unit (interval, region) and step: a bar whose text names
    the region and step on a terminal; plain lines when the output is piped (a log, CI); nothing
    with ``--json``.

    >>> with Steps("fraud_features 2026-01-01", total=12, quiet=False) as steps:  # doctest: +SKIP
    ...     steps.step("eu-west", "ingest"); steps.advance("eu-west done")
    """

    def __init__(self, title: str, total: int | None, *, quiet: bool) -> None:
        self.title, self.total, self.quiet, self.done = title, total, quiet, 0
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Steps:
        if not self.quiet and console.is_terminal:
            self._bar = _progress()
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def _line(self, text: str) -> None:
        console.print(f"{self.title}: {text}", highlight=False, markup=False, soft_wrap=True)

    def step(self, unit: str, step: str) -> None:
        """``unit`` (a region; "*" for the cross-region steps) starts ``step``."""
        text = f"{'all regions' if unit == '*' else unit}: {step}"
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {text}")
        elif not self.quiet:
            self._line(text + " …")

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)
        elif not self.quiet:
            of = f"/{self.total}" if self.total else ""
            self._line(f"{self.done}{of} done" + (f" ({note})" if note else ""))


def _decision_cell(run: Any) -> str:
    d = run.decision
    if d is None:
        return "-"
    if d.certified:
        return f"[green]certified[/] {d.generation_id}" + (" (stands: nothing changed)" if run.unchanged else "")
    checks = sorted({f"{r['check_id']}@{r['region']}" for r in d.reasons})
    return f"[red]blocked[/] ({len(d.reasons)}: {escape(', '.join(checks[:3]))}{' …' if len(checks) > 3 else ''})"


def _run_table(title: str, runs: list[tuple[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("interval", "regions", "rows written", "skipped", "seconds", "decision"):
        table.add_column(col, justify="right" if col in ("rows written", "seconds") else "left")
    for label, run in runs:
        refs = [ref for r in run.regions for ref in r.tables]
        rows = sum(ref.rows for ref in refs if not ref.skipped)
        skipped = sum(ref.skipped for ref in refs)
        table.add_row(label, str(len(run.regions)), f"{rows:,}", f"{skipped}/{len(refs)}", f"{run.seconds:.2f}",
                      _decision_cell(run))
    return table


@command("run")
def run_cmd(
    pipeline: PipelineArg,
    date_: Annotated[str, typer.Option("--date", help="interval: YYYY-MM-DD, or YYYY-MM-DDTHH[:MM] in sub-daily pipelines")],
    region: Annotated[list[str] | None, typer.Option("--region", help="only these regions (repeatable)")] = None,
    root: RootOpt = None,
    force: Annotated[bool, typer.Option("--force", help="rewrite even when inputs are unchanged")] = False,
    no_gate: Annotated[bool, typer.Option("--no-gate", help="skip reconcile and certification")] = False,
    allow_open: AllowOpenOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Run one interval of a pipeline in-process: ingest, validate, transform, reconcile, gate.

    The interval must have closed plus the sources' late allowance (else --allow-open)."""
    from pipelines.runner import run_interval
    from pipelines.spec import load_spec

    spec = load_spec(pipeline)
    # a day, or a sub-daily interval's key (2026-01-01T05, 2026-01-01T05:15)
    interval = parse_interval(spec, date_)
    regions = region or spec.regions
    if not no_gate:  # the gate decides: on storage, only where the spec's governance allows it
        from pipelines.governance import local_principal

        local_principal(spec, "certify", command=f"lockstep run {pipeline} --date {date_}")
    with Steps(f"{spec.name} {interval.key}", len(regions), quiet=json_) as steps:
        result = run_interval(spec, interval, regions, root=root, certify=not no_gate, force=force,
                              on_region=lambda rr: steps.advance(f"{rr.region} in {rr.seconds:.1f} s"),
                              on_step=steps.step, allow_open=allow_open)
    if json_:
        print_json(result.summary())
        return
    show_table(console, _run_table(f"{spec.name} at {spec.root(root)}", [(interval.key, result)]))
    if result.decision and not result.decision.certified:
        raise typer.Exit(1)


@command("demo")
def demo_cmd(
    root: RootOpt = None,
    days: Annotated[int, typer.Option(help="days to run, from 2026-01-01", min=1, max=5)] = 5,
    rows: Annotated[int, typer.Option(help="transactions per region and day")] = 20_000,
    hourly: Annotated[bool, typer.Option("--hourly", help="24 hourly intervals: a late-data hour, a stale-reference hour")] = False,
    hours: Annotated[int, typer.Option(help="with --hourly: hours to run, from 00:00", min=1, max=24)] = 24,
    json_: JsonOpt = False,
) -> None:
    """The main job: 12 regions, a few days with injected faults, the gate deciding each day."""
    from pipelines.demo import (
        DemoRelease,
        DemoStep,
        hourly_flagship,
        release_days,
        run_demo,
        run_hourly_demo,
        run_release,
    )
    from pipelines.spec import load_spec

    spec = hourly_flagship() if hourly else load_spec("fraud_features")
    steps: list[DemoStep] = []
    released: DemoRelease | None = None
    with Steps(f"{spec.name} demo", hours if hourly else days, quiet=json_) as progress:

        def on_step(step: DemoStep) -> None:
            steps.append(step)
            if "after" not in step.label and "arrived" not in step.label:
                progress.advance(f"{step.label}: {step.run.decision.status if step.run.decision else 'no decision'}")

        if hourly:
            run_hourly_demo(spec, hours=hours, rows=rows, root=root, on_step=on_step)
        else:
            run_demo(spec, days=days, rows=rows, root=root, on_step=on_step)
            progress.step("*", "model: train on certified days, shadow-score, release, score")
            released = run_release(spec, days=days, root=root)
    if json_:
        print_json([{"step": s.label, **s.run.summary()} for s in steps] + ([released.summary()] if released else []))
        return
    show_table(console, _run_table(f"{spec.name} demo: 12 regions at {spec.root(root)}", [(s.label, s.run) for s in steps]))
    where = f" --root {root}" if root else ""
    if released is not None:
        _print_release(released)
        console.print(f"Next: [bold]lockstep status {spec.command_ref}{where}[/], "
                      f"[bold]lockstep release list {spec.command_ref}{where}[/]")
        return
    if not hourly and spec.models is not None:
        console.print(f"no model released: it trains on {spec.models.window} certified day(s) and is evaluated on "
                      f"the next (--days {release_days(spec)} or more)")
    console.print(f"Next: [bold]lockstep status {spec.command_ref}{where}[/]")


def _print_release(released: Any) -> None:
    """The demo's last step: the release in force and the last day scored through it."""
    r, plan = released.release, released.plan
    console.print(f"released [bold]{r['release_id']}[/] ({r['model_name']} version {r['model_version']}) in force in "
                  f"every region from {r['effective_from']}: trained on certified {plan['window'][0]}..{plan['until']}, "
                  f"shadow-scored on {plan['evaluate_on']}")
    table = Table(title=f"{plan['evaluate_on']} scored through the release")
    for col in ("region", "rows scored", "release", "model version", "score hash"):
        table.add_column(col, justify="right" if col == "rows scored" else "left")
    for s in released.scores:
        table.add_row(s["region"], f"{s['rows']:,}", ", ".join(s["release_id"]), ", ".join(s["model_version"]),
                      s["score_hash"][:16])
    show_table(console, table)


@command("status")
def status_cmd(pipeline: PipelineArg, root: RootOpt = None, json_: JsonOpt = False) -> None:
    """Per region and table: latest version, intervals, rows; and the generation in force."""
    from pipelines.spec import load_spec
    from pipelines.status import pipeline_status

    spec = load_spec(pipeline)
    base = spec.root(root)
    if "://" not in base and "{region}" not in base and not Path(base).expanduser().is_dir():
        from pipelines.errors import StorageError

        raise StorageError(f"{'--root' if root else 'storage root'} {base}: no such folder (nothing has run "
                           "there yet, or the path is wrong)", retryable=False)
    st = pipeline_status(spec, root=root)
    if json_:
        print_json(st)
        return
    from pipelines.cli.status_view import render_status
    from pipelines.matrix import certification_matrix

    render_status(console, st, certification_matrix(spec, root=root), ref=spec.command_ref)


@command("generate")
def generate_cmd(
    out: Annotated[Path, typer.Argument(help="landing folder: <out>/<region>/<ds>.<format>")],
    start: Annotated[str, typer.Option(help="first date")] = "2026-01-01",
    days: Annotated[int, typer.Option(min=1)] = 1,
    rows: Annotated[int, typer.Option(help="rows per region and day")] = 20_000,
    regions: Annotated[str, typer.Option(help="comma-separated region ids")] = "eu-west,us-east",
    fmt: Annotated[str, typer.Option("--format", help="parquet, csv or jsonl")] = "parquet",
    seed: int = 7,
    json_: JsonOpt = False,
) -> None:
    """Write synthetic transactions as files, for file sources."""
    from pipelines.sources.synthetic import export_files
    from pipelines.spec import date_range

    first = parse_day(start, "--start")
    dates = date_range(first, date.fromordinal(first.toordinal() + days - 1))
    paths = export_files(out, regions=regions.split(","), dates=dates, rows=rows, seed=seed, fmt=fmt)
    if json_:
        print_json({"files": [str(p) for p in paths]})
        return
    console.print(f"wrote {len(paths)} files under {out}")


@command("bench")
def bench_cmd(
    rows: Annotated[int, typer.Option(help="rows per region")] = 1_000_000,
    regions: Annotated[int, typer.Option(help="number of regions", min=1, max=12)] = 12,
    only: Annotated[list[str] | None, typer.Option("--only", help="core, validation, reconcile, evidence, integrity")] = None,
    json_: JsonOpt = False,
) -> None:
    """Benchmarks, each as ratios to a reference measured in the same run, with peak RSS."""
    from pipelines.bench import run_benchmarks

    results = run_benchmarks(rows=rows, regions=regions, only=only or None, console=None if json_ else console)
    if json_:
        print_json(results)
