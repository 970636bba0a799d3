"""Control totals: row counts and sums must agree along source -> raw -> features (+ quarantine).

Decided from profiles: the ingest step records the totals of what it read from the source in
the raw table's profile, each profile holds its version's totals, and a version produced by
quarantine names the quarantine version and its totals. Per region and interval, for every
raw table with a source:

* ``source == raw + quarantine(raw)``: the rows landed (and moved aside) add up to what the
  source delivered;
* ``raw == features + quarantine(features)`` for every features table computed from it with
  the same keys (one feature row per raw row, e.g. ``card_features`` per transaction);
* when the spec names a global control file (``{ds}``, ``{hour}``, ``{root}`` placeholders;
  JSON, CSV or parquet with columns ``region``, ``rows`` and one per summed column), each
  region's source totals must match its control row and the regions must add up to the
  file's total.

Quarantine tables hold the rows validation moved aside, so they count with their table.
Sums agree within ``tolerance`` (relative); row counts too, and exactly when it is 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.control.results import CheckResult
from pipelines.errors import ReconciliationError
from pipelines.reconcile.context import Context
from pipelines.spec import ControlTotalsCheck, TableSpec

Totals = dict[str, float]


def _add(a: Totals, b: Totals) -> Totals:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a}


def agree(a: float, b: float, tolerance: float) -> bool:
    scale = max(abs(a), abs(b), 1.0)
    return abs(a - b) <= max(tolerance * scale, 1e-9 * scale)


def _compare(expected: Totals, observed: Totals, tolerance: float) -> list[str]:
    bad = []
    for k, v in expected.items():
        o = observed.get(k, 0.0)
        ok = (v == o) if (k == "rows" and tolerance == 0) else agree(float(v), float(o), tolerance)
        if not ok:
            bad.append(k)
    return bad


def _fmt(t: Totals) -> str:
    return ", ".join(f"{k}={v:,.0f}" if k == "rows" else f"{k}={v:,.2f}" for k, v in t.items())


def read_control(path: str) -> pl.DataFrame:
    p = Path(path).expanduser()
    if not p.exists():
        raise ReconciliationError(f"global control file {p} does not exist", path=str(p))
    if p.suffix == ".json":
        data = json.loads(p.read_text())
        return pl.DataFrame(data["regions"] if isinstance(data, dict) else data)
    if p.suffix == ".csv":
        return pl.read_csv(p)
    return pl.read_parquet(p)


def _derived(ctx: Context, raw: TableSpec) -> list[TableSpec]:
    out = []
    for fs in ctx.spec.features:
        t = ctx.spec.table(fs.output)
        if raw.name in fs.inputs and t.keys and t.keys == raw.keys:
            out.append(t)
    return out


def _totals(p: Any, cols: list[str]) -> Totals:
    if p is None:
        return {"rows": 0, **{c: 0.0 for c in cols}}
    return {"rows": int(p.rows), **{c: float(p.totals.get(c, 0.0)) for c in cols}}


def _with_quarantine(ctx: Context, region: str, table: TableSpec, cols: list[str]) -> tuple[Totals, Totals]:
    """(the generation's totals of ``table``, the totals validation moved to quarantine)."""
    q = ctx.quarantined(region, table)
    moved: Totals = {"rows": 0, **{c: 0.0 for c in cols}}
    if q is not None:
        qt = q.get("totals") or {}
        moved = {"rows": int(q.get("rows", 0)), **{c: float(qt.get(c, 0.0)) for c in cols}}
    return _totals(ctx.profile(region, table), cols), moved


def check_totals(ctx: Context, check: ControlTotalsCheck) -> list[CheckResult]:
    spec = ctx.spec
    results: list[CheckResult] = []
    cols = check.columns
    control: pl.DataFrame | None = None
    if check.global_control:
        path = check.global_control.format(ds=ctx.interval.ds, hour=f"{ctx.interval.hour:02d}",
                                           root=spec.control_root(ctx.root))
        control = read_control(path)
    for raw in spec.tables_in("raw"):
        if raw.source is None:
            continue
        source_totals: dict[str, Totals] = {}
        for region in spec.regions:
            base: dict[str, Any] = dict(stage="reconcile", check_type="control_totals", region=region, policy=check.policy)
            profile = ctx.profile(region, raw)
            if profile is None or profile.source is None:
                why = "no profile" if profile is None else f"no source totals in its profile at version {profile.version}"
                results.append(CheckResult(**base, check_id=f"totals.{raw.name}.source_raw", table=raw.name,
                                           success=False, message=f"{region}/{raw.path}: {why}"))
                continue
            src = {"rows": int(profile.source.get("rows", 0)), **{c: float(profile.source.get(c, 0.0)) for c in cols}}
            source_totals[region] = src
            landed, quarantined = _with_quarantine(ctx, region, raw, cols)
            kept = _add(landed, quarantined)
            bad = _compare(src, kept, check.tolerance)
            results.append(CheckResult(
                **base, check_id=f"totals.{raw.name}.source_raw", table=raw.name, success=not bad,
                observed={"raw": landed, "quarantine": quarantined}, threshold={"source": src, "tolerance": check.tolerance},
                unexpected_count=int(abs(src["rows"] - kept["rows"])), element_count=int(src["rows"]),
                table_version=profile.version,
                message=(f"source ({_fmt(src)}) = raw + quarantine ({_fmt(kept)})" if not bad else
                         f"{region}: source {_fmt(src)} but raw + quarantine {_fmt(kept)} (differ in {bad})"),
            ))
            for feat in _derived(ctx, raw):
                f_landed, f_moved = _with_quarantine(ctx, region, feat, cols)
                f_t = _add(f_landed, f_moved)
                bad = _compare(landed, f_t, check.tolerance)
                fp = ctx.profile(region, feat)
                results.append(CheckResult(
                    **base, check_id=f"totals.{feat.name}.raw_features", table=feat.name, success=not bad and fp is not None,
                    observed=f_t, threshold={"raw": landed, "tolerance": check.tolerance},
                    unexpected_count=int(abs(landed["rows"] - f_t["rows"])), element_count=int(landed["rows"]),
                    table_version=None if fp is None else fp.version,
                    message=(f"raw ({_fmt(landed)}) = {feat.name} + quarantine" if not bad and fp is not None else
                             f"{region}: raw {raw.name} {_fmt(landed)} but {feat.name} + quarantine {_fmt(f_t)} "
                             f"(differ in {bad})" if fp is not None else f"{region}/{feat.path}: no profile"),
                ))
        if control is not None:
            results += _global(ctx, check, raw, control, source_totals)
    return results


def _global(ctx: Context, check: ControlTotalsCheck, raw: TableSpec, control: pl.DataFrame,
            source_totals: dict[str, Totals]) -> list[CheckResult]:
    cols = check.columns
    if "table" in control.columns:
        control = control.filter(pl.col("table") == raw.name)
    if "region" not in control.columns or "rows" not in control.columns:
        raise ReconciliationError("global control file needs columns region and rows")
    by_region: dict[str, Totals] = {
        r["region"]: {"rows": int(r["rows"]), **{c: float(r.get(c) or 0.0) for c in cols if c in control.columns}}
        for r in control.iter_rows(named=True)
    }
    results = []
    check_id = f"totals.{raw.name}.global_control"
    for region, src in source_totals.items():
        expected = by_region.get(region)
        base: dict[str, Any] = dict(stage="reconcile", check_id=check_id, check_type="control_totals", region=region,
                    table=raw.name, policy=check.policy)
        if expected is None:
            results.append(CheckResult(**base, success=False, observed=src, threshold=None,
                                       message=f"{region}: not in the global control file"))
            continue
        bad = _compare(expected, src, check.tolerance)
        results.append(CheckResult(
            **base, success=not bad, observed=src, threshold=expected,
            unexpected_count=int(abs(expected["rows"] - src["rows"])), element_count=int(expected["rows"]),
            message=(f"matches the control file ({_fmt(expected)})" if not bad else
                     f"{region}: source delivered {_fmt(src)}, the control file says {_fmt(expected)}"),
        ))
    total: Totals = {"rows": 0, **{c: 0.0 for c in cols}}
    for t in source_totals.values():
        total = _add(total, t)
    expected_total: Totals = {"rows": 0, **{c: 0.0 for c in cols}}
    for t in by_region.values():
        expected_total = _add(expected_total, {k: t.get(k, 0.0) for k in expected_total})
    bad = _compare(expected_total, total, check.tolerance)
    results.append(CheckResult(
        stage="reconcile", check_id=f"{check_id}.sum", check_type="control_totals", region="*", table=raw.name,
        policy=check.policy, success=not bad, observed=total, threshold=expected_total,
        message=(f"regions add up to the control total ({_fmt(expected_total)})" if not bad else
                 f"regions add up to {_fmt(total)}, the control total is {_fmt(expected_total)}"),
    ))
    return results

