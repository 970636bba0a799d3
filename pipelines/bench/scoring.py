"""Scoring benchmark: one interval, every region, through the release in force, against the same
model's ``predict_proba`` on frames already in memory plus one scan.

Setup (not timed, one fresh process): the flagship's synthetic source at ``rows`` rows per
region, run and certified by the runner for two days (Data Docs off), a model trained on the
first, shadow-scored on the second in every region and promoted from it. Then, each in a fresh
process, interleaved (:func:`pipelines.bench._measure.interleaved`: in turn, ``reps`` times,
min and median), the model loaded before the clock starts in both:

* **reference**: per region, one plain scan of the certified partition of ``card_features``
  (``read_table`` at the certified version) and ``predict_proba`` on its feature columns;
* **through the release**: per region, :func:`pipelines.models.score`: the release log read,
  the interval's claim (committed by the first run, read by the others), the decision log, the
  certified read with its files verified against their content hashes, ``predict_proba``.

The figure is the ratio of the medians (issue 20's goal: <= 1.3x), with the peak RSS each adds
above the RSS after its imports. Two more figures time the **promotion decision** itself
(:func:`pipelines.models.evaluate_promotion` of a second candidate, shadow-scored against the
release in force, from the control plane and the registry's tags, load check off) over a
7-interval window of every region (issue 20's goal: <= 1 s for 12 regions x 7 intervals), on a
lake of its own with small rows (the decision never reads them): as a ratio to one plain scan
of one region's certified feature partition, and in seconds. The registry client is made
before the clock starts (MLflow's import, once per process, is reported beside it).

    lockstep bench --only scoring --rows 1000000 --regions 12
"""

from __future__ import annotations

import tempfile
from datetime import date
from typing import Any

from rich.console import Console

from pipelines.bench._measure import (
    figure,
    in_subprocess,
    interleaved,
    mark_baseline,
    print_figures,
    ratio_figure,
)

DAYS = [date(2026, 1, 1), date(2026, 1, 2)]
GOAL = 1.3
#: the promotion decision's window (issue 20: <= 1 s for 12 regions x 7 intervals), on a lake
#: of its own: one more day than the window (the first trains), small rows
PROMOTION_WINDOW = 7
PROMOTION_DAYS = [date(2026, 1, d) for d in range(1, PROMOTION_WINDOW + 2)]
PROMOTION_ROWS = 2_000


def _spec(root: str, regions: int, rows: int, window: int = 1) -> Any:
    from pipelines.spec import load_spec, parse_spec

    data = load_spec("fraud_features").model_dump(mode="json")
    data["regions"] = data["regions"][:regions]
    data["sources"]["transactions"]["rows_per_region"] = rows
    data["validation"] = {**data["validation"], "data_docs": False}
    data.update(storage={"root": root}, consumers=[], models={"window": 1, "promotion": {
        "window": window, "max_psi": 1000.0, "max_auc_drop": 1.0}})
    return parse_spec(data, "bench").with_path(load_spec("fraud_features").path)


def _setup(root: str, regions: int, rows: int, days: list[date] | None = None, window: int = 1) -> dict[str, Any]:
    """``days`` certified in every region, a model trained on the first, shadow-scored on the
    last and promoted from it, and a second candidate shadow-scored against it there."""
    from pipelines.models import promote, shadow_score, train
    from pipelines.runner import run_interval
    from pipelines.spec import Interval

    days = days or DAYS
    spec = _spec(root, regions, rows, window)
    for day in days:
        decision = run_interval(spec, Interval.for_date(day), root=root).decision
        if decision is None or not decision.certified:
            raise RuntimeError(f"bench setup: {day} was not certified")
    first, last = days[0].isoformat(), days[-1].isoformat()
    trained = train(spec, until=first, root=root)
    for region in spec.regions:
        shadow_score(spec, trained.version, last, region, root=root)
    release = promote(spec, trained.version, effective_from=last, why="bench", root=root)
    candidate = train(spec, until=first, root=root)
    for region in spec.regions:
        shadow_score(spec, candidate.version, last, region, root=root)
    return {"release": release.release_id, "version": release.model_version, "candidate": candidate.version}


def _reference(root: str, regions: int, rows: int, version: str) -> dict[str, Any]:
    import time

    from pipelines.certify import current_certified
    from pipelines.models import load_model
    from pipelines.models.train import features_frame
    from pipelines.storage import read_table

    spec = _spec(root, regions, rows)
    ms = spec.models
    assert ms is not None
    model = load_model(spec, version, root)
    decision = current_certified(spec, root=root, at=DAYS[1].isoformat())
    assert decision is not None
    table = spec.table(ms.feature_table)
    mark_baseline()
    t0, scored = time.perf_counter(), 0
    for region in spec.regions:
        uri = spec.table_uri(region, table.layer, table.name, root)
        frame = read_table(uri, version=decision.generation.version(region, table.layer, table.name),
                           partition={"ds": DAYS[1].isoformat()}).collect()
        scored += len(model.predict_proba(features_frame(frame, ms.features))[:, 1])
    return {"seconds": time.perf_counter() - t0, "rows": scored}


def _through_release(root: str, regions: int, rows: int, version: str) -> dict[str, Any]:
    import time

    from pipelines.models import load_model, score

    spec = _spec(root, regions, rows)
    load_model(spec, version, root)  # the per-process cache, filled before the clock starts
    mark_baseline()
    t0, scored = time.perf_counter(), 0
    for region in spec.regions:
        scored += score(spec, DAYS[1].isoformat(), region, root=root).height
    return {"seconds": time.perf_counter() - t0, "rows": scored}


def _one_scan(root: str, regions: int, rows: int, version: str) -> dict[str, Any]:
    import time

    from pipelines.certify import current_certified
    from pipelines.storage import read_table

    spec = _spec(root, regions, rows)
    decision = current_certified(spec, root=root, at=DAYS[1].isoformat())
    assert decision is not None and spec.models is not None
    table, region = spec.table(spec.models.feature_table), spec.regions[0]
    uri = spec.table_uri(region, table.layer, table.name, root)
    mark_baseline()
    t0 = time.perf_counter()
    n = read_table(uri, version=decision.generation.version(region, table.layer, table.name),
                   partition={"ds": DAYS[1].isoformat()}).collect().height
    return {"seconds": time.perf_counter() - t0, "rows": n}


def _promotion_decision(root: str, regions: int, rows: int, version: str) -> dict[str, Any]:
    """The promotion gate over the 7-interval window, the registry client made before the
    clock starts (a task process makes it once: its import is reported apart)."""
    import time

    from pipelines.models import evaluate_promotion
    from pipelines.models.registry import registry

    spec = _spec(root, regions, rows, PROMOTION_WINDOW)
    t0 = time.perf_counter()
    with registry(spec, root):
        pass
    client_s = time.perf_counter() - t0
    mark_baseline()
    t0 = time.perf_counter()
    evaluation = evaluate_promotion(spec, version, root=root, load=False)
    return {"seconds": time.perf_counter() - t0, "admitted": evaluation.admitted, "client_s": client_s,
            "intervals": len(evaluation.window), "reasons": [r.get("message", r) for r in evaluation.reasons[:3]]}


def run(*, rows: int, regions: int, console: Console | None = None, reps: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-scoring-") as root:
        if console:
            console.print(f"[bold]scoring bench[/]: certifying two days of {regions} regions x {rows:,} rows, "
                          "training and promoting a model …")
        made = in_subprocess(_setup, root, regions, rows)["value"]
        # the promotion decision's own lake: every region certified over a 7-interval window
        # (small data: the decision reads the control plane and the registry, never the rows)
        promo_root = f"{root}/promotion"
        promo = in_subprocess(_setup, promo_root, regions, PROMOTION_ROWS, PROMOTION_DAYS, PROMOTION_WINDOW)["value"]
        if console:
            console.print(f"  predict_proba + one scan vs scoring through {made['release']}, {reps} interleaved runs …")
        m = interleaved({
            "reference": (_reference, (root, regions, rows, made["version"])),
            "through_release": (_through_release, (root, regions, rows, made["version"])),
            "one_scan": (_one_scan, (root, regions, rows, made["version"])),
            "promotion_decision": (_promotion_decision, (promo_root, regions, PROMOTION_ROWS, promo["candidate"])),
        }, reps)
    ref, subject = m["reference"], m["through_release"]
    assert ref["value"]["rows"] == subject["value"]["rows"], (ref["value"], subject["value"])
    figures = [ratio_figure(
        f"scoring one interval, {regions} regions x {ref['value']['rows'] // max(1, regions):,} rows, through the "
        "release", subject, ref, "predict_proba on the frames + one scan", GOAL,
        rss_above_baseline_mib=subject["rss_above_baseline_mib"],
        reference_rss_above_baseline_mib=ref["rss_above_baseline_mib"])]
    decision, scan = m["promotion_decision"], m["one_scan"]
    if not decision["value"]["admitted"]:  # the candidate was made to pass; a refusal is a broken bench
        raise RuntimeError(f"bench: the promotion gate refused the candidate: {decision['value']['reasons']}")
    figures.append(ratio_figure(
        f"the promotion decision, {regions} regions x {decision['value']['intervals']} intervals, from the "
        "control plane", decision, scan, "one scan of one region's certified feature partition", None,
        rss_above_baseline_mib=decision["rss_above_baseline_mib"],
        reference_rss_above_baseline_mib=scan["rss_above_baseline_mib"]))
    figures.append(figure(
        f"the promotion decision, {regions} regions x {decision['value']['intervals']} intervals (seconds)",
        decision["median_s"], "s", "issue 20's bound", decision["median_s"], "<= 1 s", decision["median_s"] <= 1.0,
        registry_client_s=round(decision["value"]["client_s"], 3)))
    if console:
        print_figures(console, "scoring through the release", figures)
    return {"rows": ref["value"]["rows"], "regions": regions, "reps": reps, "release": made["release"],
            "figures": figures, "reference": ref, "through_release": subject, "promotion_decision": decision}

