"""Lookback coverage: does a feature set's history reach back as far as its lookback?

A 7-day window computed from 1 day of history is wrong without a word: a backfill that
starts mid-range, a first run, a lost partition. Before a transform runs, the runner asks
:func:`lookback_coverage` which days of the lookback window its ``raw`` and ``features``
inputs hold (reference inputs are read for the interval's day only) and records the answer
as a ``lookback_coverage`` check: ``warn`` by default, ``block`` when the feature set says
``lookback_coverage: block``. The check names the missing days and the earliest day
available, so ``explain`` shows exactly what a backfill would have to ingest first.

Example::

    result = lookback_coverage(spec, spec.features[0], interval, "eu-west", root=root)
    result.success, result.details["missing"]    # False, {'transactions': ['2025-12-25', ...]}
"""

from __future__ import annotations

from datetime import date

from pipelines.control.results import CheckResult
from pipelines.spec import FeatureSetSpec, Interval, PipelineSpec, date_range
from pipelines.storage import open_table


def window_days(interval: Interval, fs: FeatureSetSpec) -> list[str]:
    """Every day the lookback window of ``interval`` covers, the interval's own day included."""
    return [d.isoformat() for d in date_range((interval.start - fs.lookback).date(), interval.start.date())]


def available_days(uri: str, storage_options: dict[str, str] | None = None, version: int | None = None) -> list[str]:
    """The ``ds`` partitions a Delta table holds (at ``version``), sorted; [] when it does not exist."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        return []
    return sorted({str(p["ds"]) for p in dt.partitions() if p.get("ds") is not None})


def lookback_coverage(
    spec: PipelineSpec, fs: FeatureSetSpec, interval: Interval, region: str, *,
    root: str | None = None, versions: dict[str, int | None] | None = None,
) -> CheckResult:
    """The ``lookback_coverage`` check of one feature set, region and interval.

    Fails (with the feature set's ``lookback_coverage`` policy, ``warn`` by default) when a
    ``raw`` or ``features`` input lacks a day of the lookback window; ``details`` lists the
    missing days per input and the earliest day each holds. ``versions`` pins the input
    tables' Delta versions (those the transform reads); default: the latest.
    """
    window = window_days(interval, fs)
    opts = spec.region_options(region)
    missing: dict[str, list[str]] = {}
    earliest: dict[str, str | None] = {}
    for name in fs.inputs:
        t = spec.table(name)
        if t.layer == "reference":
            continue
        uri = spec.table_uri(region, t.layer, t.name, root)
        have = available_days(uri, opts, (versions or {}).get(name))
        earliest[name] = have[0] if have else None
        gaps = [d for d in window if d not in set(have) and d != interval.ds]
        if gaps:
            missing[name] = gaps
    n_missing = max((len(v) for v in missing.values()), default=0)
    if missing:
        parts = []
        for name, days in missing.items():
            first = earliest[name]
            since = f"earliest available {first}" if first else "no history at all"
            parts.append(f"{name} lacks {_span(days)} ({since})")
        message = (f"{region}: feature set {fs.name!r} looks back {fs.lookback.days}d from {interval.ds}; "
                   + "; ".join(parts))
    else:
        message = f"{region}: feature set {fs.name!r} has its whole {fs.lookback.days}d lookback"
    return CheckResult(
        stage="validation", check_id=f"lookback_coverage.{fs.name}", check_type="lookback_coverage",
        region=region, table=f"features/{fs.output}", policy=fs.lookback_coverage, success=not missing,
        observed=f"{len(window) - 1 - n_missing}/{len(window) - 1} days", threshold=f"{len(window) - 1} days",
        message=message, details={"missing": missing, "earliest": earliest, "window": window},
    )


def _span(days: list[str]) -> str:
    """'2025-12-25..2025-12-31 (7 days)' for a run, else the list."""
    ds = [date.fromisoformat(d) for d in days]
    if len(ds) > 2 and (ds[-1] - ds[0]).days == len(ds) - 1:
        return f"{days[0]}..{days[-1]} ({len(days)} days)"
    return ", ".join(days)
