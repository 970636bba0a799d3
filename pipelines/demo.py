"""The 12-region demo: a week of card traffic in which regions drift apart, and the gate.

Each day shows one way regional data goes wrong; the gate certifies the clean days and
blocks the others, while consumers keep reading the last consistent generation:

=========== ============================================================
day         what happens
=========== ============================================================
2026-01-01  clean: certified
2026-01-02  ``stale_reference``: ap-south keeps yesterday's merchant risk list;
            blocked by parity (naming the differing merchants), then ap-south is
            re-run with the fresh list and the day certifies
2026-01-03  ``drift``: us-west's amounts shift; blocked by drift (PSI and KS); the
            upstream re-delivers, us-west is re-run and the day certifies (else
            the shifted amounts would leak into the 4th's 24 h windows)
2026-01-04  ``missing_partition``: eu-north delivers nothing; blocked by the
            global control file and freshness; the file arrives late, eu-north is
            re-run and the day certifies (so the 5th's 24 h windows see the 4th)
2026-01-05  ``duplicates``: sa-east delivers 1% of its rows twice; quarantined
            (when validation is on), certified
=========== ============================================================

The demo ends with the model (:func:`run_release`): ``fraud_model`` is trained on the
certified days before the last (2nd to 4th), shadow-scored beside nothing in force yet on the
last one in every region, promoted in force for all regions from that day, and the day is
scored in every region through the release (each score carrying its release id).

The upstream system publishes a global control file per day (rows and amount per region,
:func:`write_control_file`); the demo points the control-totals check at it.

The hourly demo (:func:`run_hourly_demo`, ``lockstep demo --hourly``) runs 24 hours of
``fraud_features_hourly`` for the 12 regions, each hour processed when it closes plus the
late allowance:

=========== ============================================================
hour        what happens
=========== ============================================================
07:00       ``late_rows``: 20% of us-east's hour arrives after the allowance;
            the hour certifies with what had arrived, and when the late rows
            land (after 09:00) us-east's 07:00 is re-run: a new version of
            that one (region, interval) and a new certification of 07:00 only
13:00       ``stale_reference``: ap-south keeps yesterday's risk list; blocked
            by parity, ap-south re-run with the fresh list, certified
others      clean: certified
=========== ============================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.runner import IntervalRun, new_run_id, run_interval, run_region
from pipelines.spec import ControlTotalsCheck, FaultSpec, Interval, PipelineSpec, SyntheticSource
from pipelines.storage import join_uri

DEMO_START = date(2026, 1, 1)

DEMO_FAULTS = [
    FaultSpec(kind="stale_reference", regions=["ap-south"], dates=[date(2026, 1, 2)]),
    FaultSpec(kind="drift", regions=["us-west"], dates=[date(2026, 1, 3)], magnitude=1.0),
    FaultSpec(kind="missing_partition", regions=["eu-north"], dates=[date(2026, 1, 4)]),
    FaultSpec(kind="duplicates", regions=["sa-east"], dates=[date(2026, 1, 5)]),
]

#: the faults the demo repairs, by re-running their regions with the fixed delivery
REPAIRED = [DEMO_FAULTS[0], DEMO_FAULTS[1], DEMO_FAULTS[2]]

#: where the demo's upstream publishes its control files (``{root}`` is the storage root)
CONTROL_PATH = "{root}/fraud_features/_landing/control/{ds}.json"
#: the hourly demo's control files, one per hour
HOURLY_CONTROL_PATH = "{root}/fraud_features_hourly/_landing/control/{ds}T{hour}.json"

#: the hourly demo's faults: late rows at 07:00 in us-east, a stale risk list at 13:00 in ap-south
HOURLY_LATE = FaultSpec(kind="late_rows", regions=["us-east"], dates=[DEMO_START], hours=[7], magnitude=2.0)
HOURLY_STALE = FaultSpec(kind="stale_reference", regions=["ap-south"], dates=[DEMO_START], hours=[13])
HOURLY_FAULTS = [HOURLY_LATE, HOURLY_STALE]
#: the late rows land once this hour has run
LATE_ARRIVAL_AFTER = 9


def with_faults(spec: PipelineSpec, faults: list[FaultSpec], rows: int | None = None) -> PipelineSpec:
    """A copy of ``spec`` whose synthetic sources inject ``faults`` (and make ``rows`` rows)."""
    sources = {}
    for name, src in spec.sources.items():
        if isinstance(src, SyntheticSource):
            update: dict[str, object] = {"faults": faults}
            if rows is not None:
                update["rows_per_region"] = rows
            src = src.model_copy(update=update)
        sources[name] = src
    return spec.model_copy(update={"sources": sources}).with_path(spec.path)


def _control_path(spec: PipelineSpec) -> str:
    return CONTROL_PATH if spec.granularity == "day" else HOURLY_CONTROL_PATH


def with_control_file(spec: PipelineSpec) -> PipelineSpec:
    """A copy of ``spec`` whose control-totals check reads the demo's global control file."""
    ct = spec.reconcile.control_totals or ControlTotalsCheck(columns=["amount"])
    control = ct.model_copy(update={"global_control": _control_path(spec)})
    rec = spec.reconcile.model_copy(update={"control_totals": control})
    return spec.model_copy(update={"reconcile": rec}).with_path(spec.path)


def write_control_file(spec: PipelineSpec, ds: date | Interval, *, root: str | None = None) -> Path:
    """What the upstream says it sent on ``ds`` (or in an hourly interval): rows and amount per
    region. Lost deliveries (``missing_partition``) are still counted: that is how the control
    file exposes them; rows not sent yet (``late_rows``) are not."""
    from pipelines.sources.synthetic import for_interval

    iv = ds if isinstance(ds, Interval) else Interval.for_date(ds)
    src = spec.sources["transactions"]
    assert isinstance(src, SyntheticSource)
    faults = [f for f in src.faults if f.kind != "missing_partition"]
    rows = []
    for region in spec.regions:
        df = for_interval("transactions", region, iv.start, iv.end, regions=spec.regions, rows=src.rows_per_region,
                          merchants=src.merchants, seed=src.seed, faults=faults)
        rows.append({"region": region, "rows": df.height, "amount": float(df["amount"].sum())})
    path = Path(_control_path(spec).format(root=join_uri(spec.control_root(root)), ds=iv.ds, hour=f"{iv.hour:02d}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ds": iv.ds, "regions": rows}, indent=1))
    return path


@dataclass
class DemoStep:
    label: str
    run: IntervalRun


def run_demo(
    spec: PipelineSpec, *, days: int = 5, rows: int | None = None, root: str | None = None,
    on_step: Callable[[DemoStep], None] | None = None,
) -> list[DemoStep]:
    """Run the demo days in order; after the stale-reference day, repair it and re-gate."""
    faulty = with_control_file(with_faults(spec, DEMO_FAULTS, rows))
    steps = []
    for i in range(days):
        ds = date.fromordinal(DEMO_START.toordinal() + i)
        interval = Interval.for_date(ds, spec.granularity)
        write_control_file(faulty, ds, root=root)
        run = run_interval(faulty, interval, root=root)
        faults = [f.kind for f in DEMO_FAULTS if f.dates and ds in f.dates]
        step = DemoStep(f"{interval.key} {', '.join(faults) or 'clean'}", run)
        steps.append(step)
        if on_step:
            on_step(step)
        repairs = [f for f in REPAIRED if ds in f.dates]
        if repairs and run.decision and not run.decision.certified:
            # the operator's fix: re-run the affected regions with the corrected delivery
            fixed = with_control_file(with_faults(spec, [f for f in DEMO_FAULTS if f not in repairs], rows))
            regions = [r for f in repairs for r in f.regions]
            step = DemoStep(f"{interval.key} after re-running {', '.join(regions)}",
                            _rerun(fixed, interval, regions, root=root))
            steps.append(step)
            if on_step:
                on_step(step)
    return steps


@dataclass
class DemoRelease:
    """The demo's release: the plan it followed, the model trained, the release, and the
    last day scored through it in every region."""

    plan: dict[str, Any]
    candidate: dict[str, Any]
    release: dict[str, Any]
    scores: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return {"step": f"release {self.release['release_id']}", "plan": self.plan, "candidate": self.candidate,
                "release": self.release, "scores": self.scores}


def release_days(spec: PipelineSpec) -> int:
    """How many demo days a release needs: its training window, and the day it is evaluated on."""
    return (spec.models.window if spec.models else 0) + 1


def run_release(spec: PipelineSpec, *, days: int = 5, root: str | None = None) -> DemoRelease | None:
    """After :func:`run_demo`: train the spec's model on the certified days before the last,
    evaluate it on the last, release it from the last day on and score that day in every
    region through the release. ``None`` when the spec has no model or too few days ran. Run
    again, the release already in force for the last day is kept (and the day scored again)."""
    from pipelines.models import release_in_force
    from pipelines.release_flow import plan_release, release_model, score_region

    if spec.models is None or days < release_days(spec):
        return None
    last = Interval.for_date(date.fromordinal(DEMO_START.toordinal() + days - 1), spec.granularity).key
    kept = release_in_force(spec, last, root=root)
    if kept is None:
        out = release_model(spec, last, effective_from=last, why="the demo's first fraud model", root=root)
    else:
        out = {"plan": plan_release(spec, last, effective_from=last, root=root).to_json(),
               "candidate": {"model": kept.model_name, "version": kept.model_version}, "release": kept.to_json()}
    scores = [score_region(spec, last, region, root=root) for region in spec.regions]
    return DemoRelease(out["plan"], out["candidate"], out["release"], scores)


def _rerun(spec: PipelineSpec, interval: Interval, regions: list[str], *, root: str | None) -> IntervalRun:
    """An operator's (or a late delivery's) re-run: the named regions' steps, then the gate
    over the whole generation (the other regions' tables stay at their versions)."""
    write_control_file(spec, interval, root=root)  # a re-delivery comes with its control file
    run_id = new_run_id()
    runs = [run_region(spec, interval, region, root=root, run_id=run_id) for region in regions]
    result = run_interval(spec, interval, regions=[], root=root, run_id=run_id)
    result.regions = runs  # what was written, shown beside the decision
    return result


def run_hourly_demo(
    spec: PipelineSpec, *, hours: int = 24, rows: int | None = None, root: str | None = None,
    on_step: Callable[[DemoStep], None] | None = None,
) -> list[DemoStep]:
    """Run the hourly demo (``fraud_features_hourly``): ``hours`` hourly intervals of
    2026-01-01 for every region, a stale risk list repaired at 13:00 and late rows for 07:00
    that re-certify 07:00 alone once they land."""
    if spec.granularity != "hour":
        from pipelines.errors import SpecError

        raise SpecError(f"{spec.name}: the hourly demo needs an hourly pipeline (granularity: hour)")
    faulty = with_control_file(with_faults(spec, HOURLY_FAULTS, rows))
    steps: list[DemoStep] = []

    def emit(step: DemoStep) -> None:
        steps.append(step)
        if on_step:
            on_step(step)

    late_iv = Interval.for_date(DEMO_START, "hour", HOURLY_LATE.hours[0])
    for h in range(hours):
        iv = Interval.for_date(DEMO_START, "hour", h)
        write_control_file(faulty, iv, root=root)
        run = run_interval(faulty, iv, root=root)
        kinds = [f.kind for f in HOURLY_FAULTS if f.hours == [h]]
        emit(DemoStep(f"{iv.key} {', '.join(kinds) or 'clean'}", run))
        if h == HOURLY_STALE.hours[0] and run.decision and not run.decision.certified:
            fixed = with_control_file(with_faults(spec, [HOURLY_LATE], rows))
            emit(DemoStep(f"{iv.key} after re-running {', '.join(HOURLY_STALE.regions)}",
                          _rerun(fixed, iv, HOURLY_STALE.regions, root=root)))
        if h == LATE_ARRIVAL_AFTER and hours > late_iv.hour:
            # the late rows of 07:00 land: that one (region, hour) is re-versioned and re-certified
            arrived = with_control_file(with_faults(spec, [], rows))
            emit(DemoStep(f"{late_iv.key} late rows of {', '.join(HOURLY_LATE.regions)} arrived",
                          _rerun(arrived, late_iv, HOURLY_LATE.regions, root=root)))
    return steps


def hourly_flagship() -> PipelineSpec:
    """``fraud_features_hourly`` (``dags/fraud_features_hourly.yaml``); outside the repository,
    the shipped daily flagship made hourly the same way."""
    from pipelines.errors import SpecError
    from pipelines.spec import load_spec, parse_spec

    try:
        return load_spec("fraud_features_hourly")
    except SpecError:
        daily = load_spec("fraud_features")
    data = daily.model_dump(mode="json")
    data.update(name="fraud_features_hourly", granularity="hour", schedule="@hourly", consumers=[])
    for t in data["tables"]:
        t.pop("partition_by")  # the granularity's columns: ds, hour
    data["sources"]["transactions"]["late_allowance"] = "10m"
    return parse_spec(data, "fraud_features_hourly").with_path(daily.path)
