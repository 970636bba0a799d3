"""The certification log on real Delta: atomic decisions, rollback and override auditing,
certified reads with ``at`` and a staleness budget."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.certify import (
    CERTIFICATIONS,
    active_certifications,
    current_certified,
    decisions,
    explain,
    override,
    read_certified,
    rollback,
)
from pipelines.control.evidence import publish_write
from pipelines.control.results import load_results
from pipelines.errors import CertificationError
from pipelines.runner import certify, reconcile_step, run_interval
from pipelines.spec import Interval
from pipelines.storage import lockstep_uri, table_uri, write_interval
from tests.conftest import make_spec

D1, D2, D3 = (Interval.for_date(f"2026-01-0{i}") for i in (1, 2, 3))


def _stale(spec, root: str, region: str, interval: Interval) -> None:  # type: ignore[no-untyped-def]
    """Make one region's reference table differ (as a stale delivery would)."""
    uri = table_uri(root, spec.name, region, "reference", "merchant_risk")
    df = pl.read_delta(uri).filter(pl.col("ds") == interval.ds)
    df = df.with_columns(risk_score=pl.when(pl.col("merchant_id") < 3).then(0.999).otherwise(pl.col("risk_score")))
    ref = write_interval(uri, df, partition={"ds": interval.ds}, app_id="stale")
    publish_write(spec, region, spec.table("merchant_risk"), "reference", interval, df, ref, root=root)


def _reconcile_then_die(spec_json: str, root: str, run_id: str) -> None:
    from pipelines.spec import parse_spec

    spec = parse_spec(json.loads(spec_json), "t")
    reconcile_step(spec, D2, root=root, run_id=run_id)
    os._exit(3)  # killed between the checks and the certification commit


def test_a_failure_between_checks_and_commit_certifies_nothing(root: str) -> None:
    spec = make_spec(regions=2)
    run_interval(spec, D1, root=root)
    run_interval(spec, D2, root=root, certify=False)
    ctx = mp.get_context("forkserver")
    proc = ctx.Process(target=_reconcile_then_die, args=(json.dumps(spec.model_dump(mode="json")), root, "dying"))
    proc.start()
    proc.join()
    assert proc.exitcode == 3
    assert load_results(root, spec.name, D2.key, "dying").height > 0  # the checks were recorded...
    assert [d.interval for d in decisions(spec, root=root)] == ["2026-01-01"]  # ...no decision was
    cur = current_certified(spec, root=root)
    assert cur is not None and cur.interval == "2026-01-01"
    for region in spec.regions:
        assert set(read_certified(spec, "card_features", region, root=root).collect()["ds"]) == {"2026-01-01"}


def test_one_commit_holds_every_region(root: str) -> None:
    spec = make_spec(regions=3)
    run_interval(spec, D1, root=root)
    log = pl.read_delta(lockstep_uri(root, spec.name, CERTIFICATIONS))
    assert log.height == 1
    members = json.loads(log["generation"][0])
    assert {k.split("/")[0] for k in members} == set(spec.regions)
    d = decisions(spec, root=root)[0]
    assert d.spec_hash == spec.spec_hash() and d.code_version and d.who and d.run_id


def test_blocked_interval_keeps_the_previous_generation_and_override_is_audited(root: str) -> None:
    spec = make_spec(regions=2)
    run_interval(spec, D1, root=root)
    run_interval(spec, D2, root=root, certify=False)
    _stale(spec, root, spec.regions[1], D2)
    blocked = certify(spec, D2, root=root)
    assert not blocked.certified
    assert any(r["check_id"] == "parity.merchant_risk" and r["region"] == spec.regions[1] for r in blocked.reasons)
    assert set(read_certified(spec, "merchant_risk", spec.regions[0], root=root).collect()["ds"]) == {"2026-01-01"}
    ex = explain(spec, D2, root=root)
    parity = [f for f in ex["failed"] if f["check_type"] == "parity"]
    assert parity and sorted(parity[0]["details"]["changed_keys"]) == [0, 1, 2]

    with pytest.raises(CertificationError, match="reason"):
        override(spec, D2, reason=" ", root=root, generation=blocked.generation_id)
    until = datetime.now(UTC) + timedelta(hours=1)
    ov = override(spec, D2, reason="known vendor delay, ticket 42", until=until, root=root,
                  generation=blocked.generation_id)
    assert ov.certified and ov.kind == "override" and ov.target == blocked.decision_id
    assert ov.reasons == blocked.reasons and ov.who and ov.run_id and ov.reason.startswith("known")
    assert current_certified(spec, root=root).decision_id == ov.decision_id  # type: ignore[union-attr]
    # after the expiry the override no longer counts: the 1st is in force again
    later = datetime.now(UTC) + timedelta(hours=2)
    assert "2026-01-02" not in active_certifications(spec, root=root, now=later)
    # the blocked decision is still there, unchanged: decisions are appended, never edited
    log = decisions(spec, root=root)
    assert [(d.kind, d.status) for d in log] == [("gate", "certified"), ("gate", "blocked"), ("override", "certified")]


def test_rollback_repoints_without_touching_tables(root: str) -> None:
    spec = make_spec(regions=2)
    first = run_interval(spec, D1, root=root).decision
    second = run_interval(spec, D2, root=root).decision
    assert first and second and first.certified and second.certified
    region = spec.regions[0]
    uri = table_uri(root, spec.name, region, "features", "card_features")
    version_before = pl.read_delta(uri).height, len(os.listdir(Path(uri) / "_delta_log"))
    with pytest.raises(CertificationError, match="reason"):
        rollback(spec, first.generation_id, reason="", root=root)
    with pytest.raises(CertificationError, match="no certified generation"):
        rollback(spec, "2025-01-01.nope", reason="x", root=root)
    rb = rollback(spec, first.generation_id, reason="bad features on the 2nd", root=root, scope="pipeline")
    assert rb.kind == "rollback" and rb.target == first.decision_id and rb.generation == first.generation
    assert (pl.read_delta(uri).height, len(os.listdir(Path(uri) / "_delta_log"))) == version_before  # no RESTORE
    cur = current_certified(spec, root=root)
    assert cur is not None and cur.generation_id == first.generation_id
    assert set(read_certified(spec, "card_features", region, root=root).collect()["ds"]) == {"2026-01-01"}
    with pytest.raises(CertificationError, match="revoked"):
        read_certified(spec, "card_features", region, root=root, at="2026-01-02")
    # a later gate moves forward again
    third = run_interval(spec, D3, root=root).decision
    assert third and third.certified
    assert current_certified(spec, root=root).interval == "2026-01-03"  # type: ignore[union-attr]
    assert [d.kind for d in decisions(spec, root=root)] == ["gate", "gate", "rollback", "gate"]


def test_read_certified_at_and_staleness(root: str) -> None:
    spec = make_spec(regions=1)
    run_interval(spec, D1, root=root)
    d2 = run_interval(spec, D2, root=root).decision
    region = spec.regions[0]
    assert set(read_certified(spec, "card_features", region, root=root, at="2026-01-01").collect()["ds"]) == {"2026-01-01"}
    assert d2 is not None
    assert set(read_certified(spec, "card_features", region, root=root, at=d2.generation_id).collect()["ds"]) == {"2026-01-02"}
    with pytest.raises(CertificationError, match="staleness budget"):
        read_certified(spec, "card_features", region, root=root, max_staleness=timedelta(days=1))
    age = datetime.now(UTC) - D2.end
    assert read_certified(spec, "card_features", region, root=root, max_staleness=age + timedelta(days=1)).collect().height
    with pytest.raises(CertificationError, match="no decision"):
        read_certified(spec, "card_features", region, root=root, at="2025-12-31")
