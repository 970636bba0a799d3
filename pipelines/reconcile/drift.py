"""Distribution drift: PSI and Kolmogorov-Smirnov from the regions' published cell counts.

For each chosen feature column, every value is mapped once - where it lives, when its region
writes the table version (:mod:`pipelines.evidence.profile`) - to a fine cell of an
order-preserving grid: the top 22 bits of the float's bits, made monotonic (sign flipped).
The profile holds the non-empty cells' counts; the gate adds the counts of each population
(each region's interval, each region's trailing certified window) over the union of cells.
Cells keep value order, so per-population cell counts give every CDF:

* **KS** is the largest gap between two CDFs over the cell edges. The error against the
  exact statistic is at most one cell's mass (cells are 2**-10 of a binade wide: <1e-3 for
  realistic data; integers below 1024 each get their own cell, so ties are exact).
* **PSI** uses ``bins`` fixed quantile bins of the *reference* (the pooled other regions, or
  the region's own window): cells are grouped where the reference's CDF crosses k/bins.

Each region is compared with the pooled other regions (outliers trimmed from the pool, see
:func:`pooled_comparisons`) and with its own trailing window of
certified intervals (warm-up intervals, within the feature set's lookback of the pipeline's
start, are left out: their windowed features are not in steady state). A comparison fails
when its statistic is over the threshold *and* significant at ``alpha`` (KS: the asymptotic
critical value; PSI: n_eff * PSI ~ chi2(bins - 1)), so small samples do not block on noise; with fewer than ``min_rows`` values on either side
a comparison is recorded but never blocks (rows of one card are not independent draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from pipelines.control.results import CheckResult
from pipelines.evidence.cells import CELL_BITS, cells
from pipelines.reconcile.context import Context
from pipelines.spec import DriftCheck, Interval


def _kernels(total: int) -> Any:
    """The compiled binning kernels for large inputs (None: numpy, small input or no numba)."""
    if total < 1 << 18:
        return None
    try:
        from pipelines.reconcile import _drift_kernels
    except ImportError:
        return None
    return _drift_kernels


def binned(populations: list[np.ndarray]) -> np.ndarray:
    """One pass: counts of each population over the shared non-empty cells (P x C)."""
    k = _kernels(sum(len(p) for p in populations))
    if k is not None:  # cells computed and counted in place: no column-sized temporaries
        xs = [np.ascontiguousarray(p, dtype=np.float64) for p in populations]
        lut = np.zeros(1 << CELL_BITS, dtype=np.int64)
        for x in xs:
            k.add_cells(x, x.view(np.int64), lut)
        nz = np.flatnonzero(lut)
        lut[nz] = np.arange(len(nz))
        out = np.zeros((len(xs), max(1, len(nz))), dtype=np.int64)
        for i, x in enumerate(xs):
            k.add_compact(x, x.view(np.int64), lut, out[i])
        return out
    keys = [cells(p) for p in populations]
    total = sum(len(k) for k in keys)
    if total < 1 << 18:  # small: sorting beats a 4M-cell count
        nz = np.unique(np.concatenate(keys)) if total else np.zeros(0, np.int64)
        compact = [np.searchsorted(nz, k) for k in keys]
    else:
        pooled = np.bincount(np.concatenate(keys), minlength=1 << CELL_BITS)
        nz = np.flatnonzero(pooled)
        lut = np.zeros(1 << CELL_BITS, dtype=np.int64)
        lut[nz] = np.arange(len(nz))
        compact = [lut[k] for k in keys]
    out = np.zeros((len(populations), max(1, len(nz))), dtype=np.int64)
    for i, c in enumerate(compact):
        if len(c):
            out[i, : len(nz)] = np.bincount(c, minlength=len(nz))
    return out


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """KS statistic from two count vectors over the same ordered cells."""
    na, nb = a.sum(), b.sum()
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.max(np.abs(np.cumsum(a) / na - np.cumsum(b) / nb)))


def psi(actual: np.ndarray, reference: np.ndarray, bins: int) -> tuple[float, int]:
    """PSI of ``actual`` against ``reference`` over the reference's quantile bins."""
    nr, na = reference.sum(), actual.sum()
    if nr == 0 or na == 0:
        return float("nan"), 0
    cum = np.cumsum(reference) / nr
    cuts = np.unique(np.searchsorted(cum, np.arange(1, bins) / bins, side="left"))
    group = np.searchsorted(cuts, np.arange(len(reference)), side="left")
    k = int(group.max()) + 1
    q = np.maximum(np.bincount(group, weights=reference, minlength=k) / nr, 1e-4)
    p = np.maximum(np.bincount(group, weights=actual, minlength=k) / na, 1e-4)
    return float(np.sum((p - q) * np.log(p / q))), k


def ks_critical(n: float, m: float, alpha: float) -> float:
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def chi2_quantile(p: float, k: int) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (within ~1% for k >= 1 at
    the tail levels used here; avoids importing scipy on the gate's path)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(p)
    h = 2 / (9 * k)
    return float(k * max(0.0, 1 - h + z * math.sqrt(h)) ** 3)


def psi_critical(n: float, m: float, bins: int, alpha: float) -> float:
    return chi2_quantile(1 - alpha, max(1, bins - 1)) * (1 / n + 1 / m)


@dataclass
class Comparison:
    against: str
    psi: float
    ks: float
    n: int
    m: int
    psi_fail: bool
    ks_fail: bool

    def as_dict(self) -> dict[str, Any]:
        return {"against": self.against, "psi": round(self.psi, 4), "ks": round(self.ks, 4), "n": self.n,
                "m": self.m, "psi_fail": self.psi_fail, "ks_fail": self.ks_fail}


def compare_counts(a: np.ndarray, ref: np.ndarray, against: str, check: DriftCheck, psi_max: float,
                   ks_max: float) -> Comparison:
    n, m = int(a.sum()), int(ref.sum())
    p, k = psi(a, ref, check.bins)
    d = ks(a, ref)
    if n == 0 or m == 0 or min(n, m) < check.min_rows:
        return Comparison(against, p, d, n, m, False, False)
    psi_fail = p > psi_max and p > psi_critical(n, m, k, check.alpha)
    ks_fail = d > ks_max and d > ks_critical(n, m, check.alpha)
    return Comparison(against, p, d, n, m, psi_fail, ks_fail)


def pooled_comparisons(cur: np.ndarray, check: DriftCheck, psi_max: float, ks_max: float) -> dict[int, Comparison]:
    return pooled_with_aside(cur, check, psi_max, ks_max)[0]


def pooled_with_aside(cur: np.ndarray, check: DriftCheck, psi_max: float, ks_max: float,
                      ) -> tuple[dict[int, Comparison], list[int]]:
    """Each region against the pooled other regions, trimming outliers from the pool.

    With few regions one drifted region moves the pool enough to make the healthy ones look
    drifted too. So the worst failing region is set aside and the others are compared again
    without it, while a majority of regions remains; set-aside regions are compared with the
    pool of the regions kept.
    """
    n = len(cur)
    if n < 2:
        return {}, []
    aside: list[int] = []
    while True:
        keep = [i for i in range(n) if i not in aside]
        pool = cur[keep].sum(axis=0)
        comps = {i: compare_counts(cur[i], pool - cur[i], "other regions", check, psi_max, ks_max) for i in keep}
        failing = [i for i, c in comps.items() if c.psi_fail or c.ks_fail]
        if not failing or len(aside) + 1 > (n - 1) // 2:
            break
        aside.append(max(failing, key=lambda i: (comps[i].psi, comps[i].ks)))
    for i in aside:
        comps[i] = compare_counts(cur[i], pool, "other regions", check, psi_max, ks_max)
    return comps, aside


def column_values(lf: pl.LazyFrame | None, columns: list[str]) -> dict[str, np.ndarray]:
    """Each column's non-null, non-NaN values as float64, from one read of the frame."""
    if lf is None:
        return {c: np.zeros(0) for c in columns}
    df = lf.select(columns).collect()
    out = {}
    for c in columns:
        s = df[c]
        if s.null_count():
            s = s.drop_nulls()
        if s.dtype.is_float() and s.is_nan().any():
            s = s.filter(~s.is_nan())
        out[c] = s.cast(pl.Float64).to_numpy()
    return out


def binned_many(populations: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """:func:`binned` of several columns, on a thread pool (numpy releases the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    names = list(populations)
    if sum(len(p) for ps in populations.values() for p in ps) < 1_000_000:
        return {c: binned(populations[c]) for c in names}
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
        return dict(zip(names, pool.map(lambda c: binned(populations[c]), names), strict=True))


def dense(hists: list[list[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """Populations given as sums of sparse (cells, counts) histograms -> P x C counts over the
    union of non-empty cells, in cell order (what :func:`binned` returns for the values)."""
    parts = [(i, c, n) for i, pop in enumerate(hists) for c, n in pop if len(c)]
    if not parts:
        return np.zeros((len(hists), 1), dtype=np.int64)
    # one pass: every (population, cell) pair numbered over the union of cells, then summed
    nz, where = np.unique(np.concatenate([c for _, c, _ in parts]), return_inverse=True)
    pop = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c, _ in parts])
    counts = np.concatenate([np.asarray(n, dtype=np.int64) for _, _, n in parts])
    out = np.zeros(len(hists) * len(nz), dtype=np.int64)
    np.add.at(out, pop * len(nz) + where.ravel(), counts)
    return out.reshape(len(hists), len(nz))


def window_intervals(ctx: Context, check: DriftCheck) -> tuple[list[tuple[Interval, Any]], str]:
    """The region-independent trailing window: up to ``window`` certified intervals before this
    one, past the warm-up. Returns ([(interval, decision)], why-empty)."""
    from pipelines.certify.read import active_entries
    from pipelines.control.decisions import decisions_by_id

    spec = ctx.spec
    fs = spec.feature_set_for(check.table)
    lookback = fs.lookback if fs else timedelta(0)
    first_steady = spec.start_date.toordinal() + lookback.days
    if ctx.interval.start.date().toordinal() < first_steady:
        return [], "warm-up (within the feature lookback of the pipeline start)"
    # what is in force, folded from a few columns of the log; only the window's decisions read whole
    active = active_entries(spec, root=ctx.root)
    past = sorted(
        (d for d in active.values()
         if d.interval_start < ctx.interval.start and d.interval_start.date().toordinal() >= first_steady),
        key=lambda d: d.interval_start,
    )[-check.window:]
    whole = decisions_by_id(spec, [d.decision_id for d in past], root=ctx.root)
    missing = [d.decision_id for d in past if d.decision_id not in whole]
    if missing:  # cannot happen in an append-only log; never judge on a window half read
        raise LookupError(f"decisions {missing} of the drift window vanished from the decision log")
    out = [(spec.interval_at(d.interval_start), whole[d.decision_id]) for d in past]
    return out, "" if out else "no certified history past the warm-up"


def check_drift(ctx: Context, check: DriftCheck) -> list[CheckResult]:
    spec = ctx.spec
    table = spec.table(check.table)
    regions = spec.regions
    window, why = window_intervals(ctx, check)
    columns = list(check.columns)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    missing: list[str] = []
    current: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for r in regions:
        p = ctx.profile(r, table)
        if p is not None and any(c not in p.hist for c in columns):
            missing.append(f"{r} (profile at version {p.version} has no histogram of {sorted(set(columns) - set(p.hist))})")
        current[r] = {c: p.hist.get(c, empty) for c in columns} if p is not None else {c: empty for c in columns}
    history: dict[str, list[dict[str, tuple[np.ndarray, np.ndarray]]]] = {r: [] for r in regions}
    past = ctx.window([iv.key for iv, _ in window], table.name) if window else None
    for iv, decision in window:
        assert past is not None
        for r in regions:
            v = decision.generation.version(r, table.layer, table.name)
            if v is None:
                continue
            hp = past.at(r, table.layer, table.name, iv.key, v)
            if hp is None:  # certified without this profile: the window cannot be trusted silently
                missing.append(f"{r} (no profile of certified {iv.key} at version {v})")
                continue
            history[r].append({c: hp.hist.get(c, empty) for c in columns})
    results: list[CheckResult] = []
    if missing:
        results.append(CheckResult(
            stage="reconcile", check_id=f"drift.{table.name}.evidence", check_type="drift", region="*",
            table=table.name, policy=check.policy, success=False, observed=missing, threshold="complete",
            message="drift evidence incomplete: " + "; ".join(missing)))
    all_counts = {
        c: dense([[current[r][c]] for r in regions] + [[h[c] for h in history[r]] for r in regions])
        for c in columns
    }
    for column, thr in check.columns.items():
        counts = all_counts[column]
        cur, win = counts[: len(regions)], counts[len(regions):]
        pooled = pooled_comparisons(cur, check, thr.psi, thr.ks)
        for i, region in enumerate(regions):
            comps: list[Comparison] = []
            if i in pooled:
                comps.append(pooled[i])
            if win[i].sum():
                comps.append(compare_counts(cur[i], win[i], f"own window ({len(window)} certified)", check, thr.psi, thr.ks))
            failing = [c for c in comps if c.psi_fail or c.ks_fail]
            if cur[i].sum() == 0:
                msg = f"{region}: no values of {column}"
            elif failing:
                msg = "; ".join(
                    f"{region}.{column} vs {c.against}: "
                    + ", ".join([f"PSI {c.psi:.3f} > {thr.psi}"] * c.psi_fail + [f"KS {c.ks:.3f} > {thr.ks}"] * c.ks_fail)
                    + f" (n={c.n:,}, m={c.m:,})" for c in failing)
            else:
                msg = ", ".join(f"vs {c.against}: PSI {c.psi:.3f}, KS {c.ks:.3f}" for c in comps) or "nothing to compare"
            results.append(CheckResult(
                stage="reconcile", check_id=f"drift.{table.name}.{column}", check_type="drift", region=region,
                table=table.name, policy=check.policy, success=not failing,
                observed={c.against: {"psi": round(c.psi, 4), "ks": round(c.ks, 4)} for c in comps},
                threshold={"psi": thr.psi, "ks": thr.ks, "alpha": check.alpha},
                element_count=int(cur[i].sum()), message=msg,
                details={"column": column, "comparisons": [c.as_dict() for c in comps],
                         "window": [iv.key for iv, _ in window], "window_note": why},
            ))
    return results
