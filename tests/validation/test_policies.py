"""Policies on real Delta tables through the runner: warn, quarantine (with its cap), block,
and the demo's faults showing up as the right results."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from pipelines.control.results import load_results
from pipelines.runner import run_interval
from pipelines.spec import Interval, parse_spec
from pipelines.storage import read_table, table_uri, table_version
from tests.conftest import REPO, small_spec_data

D = "2026-01-01"


def spec_with(faults: list[dict[str, Any]], regions: int = 2, rows: int = 1000, **validation: Any) -> Any:
    data = small_spec_data(regions, rows)
    data["sources"]["transactions"]["faults"] = faults
    data["validation"].update(validation)
    return parse_spec(data, "validation-test").with_path(REPO / "dags" / "fraud_features.yaml")


def fault(kind: str, region: str = "eu-central", **kw: Any) -> dict[str, Any]:
    return {"kind": kind, "regions": [region], "dates": [D], **kw}


def test_clean_regions_pass(root: str) -> None:
    spec = spec_with([])
    run = run_interval(spec, Interval.for_date(D), root=root)
    assert run.decision is not None and run.decision.certified, run.decision.reasons if run.decision else None
    results = load_results(root, spec.name, D)
    validation = results.filter(pl.col("stage") == "validation")
    assert validation.height > 30 and validation.filter(pl.col("blocking")).is_empty()


def test_duplicates_are_quarantined_and_the_rest_continues(root: str) -> None:
    spec = spec_with([fault("duplicates")])
    run = run_interval(spec, Interval.for_date(D), root=root)
    raw = read_table(table_uri(root, spec.name, "eu-central", "raw", "transactions")).collect()
    q = read_table(table_uri(root, spec.name, "eu-central", "quarantine", "transactions")).collect()
    assert q.height == 20 and set(q["_check_ids"]) == {"column_values_to_be_unique[txn_id]#1"}
    assert raw["txn_id"].n_unique() == raw.height == 1010 - 20, "both copies of a duplicated row are set aside"
    feats = read_table(table_uri(root, spec.name, "eu-central", "features", "card_features")).collect()
    assert feats.height == raw.height, "quarantined rows never feed a feature"
    assert run.decision is not None and run.decision.certified, run.decision.reasons
    # validating again neither duplicates quarantine rows nor drops any
    version = table_version(table_uri(root, spec.name, "eu-central", "raw", "transactions"))
    run_interval(spec, Interval.for_date(D), root=root)
    assert read_table(table_uri(root, spec.name, "eu-central", "quarantine", "transactions")).collect().height == 20
    assert table_version(table_uri(root, spec.name, "eu-central", "raw", "transactions")) == version


def test_quarantine_over_the_cap_blocks(root: str) -> None:
    spec = spec_with([fault("duplicates", magnitude=5.0)], quarantine_cap=0.02)
    run = run_interval(spec, Interval.for_date(D), root=root)
    assert run.decision is not None and not run.decision.certified
    assert any(r["check_id"] == "transactions.quarantine_cap" and r["region"] == "eu-central" for r in run.decision.reasons)


def test_schema_change_blocks(root: str) -> None:
    day2 = "2026-01-02"
    spec = spec_with([{"kind": "schema_change", "regions": ["eu-central"], "dates": [day2]}])
    run_interval(spec, Interval.for_date(D), root=root)
    run = run_interval(spec, Interval.for_date(day2), root=root)
    assert run.decision is not None and not run.decision.certified
    ids = {(r["check_id"], r["region"]) for r in run.decision.reasons}
    assert ("transactions.column_values_to_not_be_null[mcc]#5", "eu-central") in ids


def test_drift_blocks_by_expectation(root: str) -> None:
    spec = spec_with([fault("drift", magnitude=1.5)])
    run = run_interval(spec, Interval.for_date(D), root=root)
    assert run.decision is not None and not run.decision.certified
    ids = {r["check_id"] for r in run.decision.reasons if r["region"] == "eu-central"}
    assert "transactions.column_median_to_be_between[amount]#12" in ids


def test_warn_is_recorded_and_does_not_block(root: str) -> None:
    spec = spec_with([])
    run_interval(spec, Interval.for_date(D), root=root)
    warn = load_results(root, spec.name, D).filter(pl.col("policy") == "warn")
    assert warn.height > 0 and not warn["blocking"].any()


def test_engines_agree_on_the_flagship_tables(root: str) -> None:
    from pipelines.validation import run_suite
    from pipelines.validation.suites import load_suite, suite_parameters

    spec = spec_with([fault("duplicates"), fault("drift")], regions=2)
    run_interval(spec, Interval.for_date(D), root=root, certify=False)
    for table in ("transactions", "card_features", "merchant_features", "merchant_risk"):
        t = spec.table(table)
        frame = read_table(table_uri(root, spec.name, "eu-central", t.layer, t.name)).collect()
        s = load_suite(REPO / "expectations" / f"{table}.json", parameters=suite_parameters(spec, t))
        a, b = run_suite(frame, s.expectations, "polars"), run_suite(frame, s.expectations, "gx")
        for e, x, y in zip(s.expectations, a, b, strict=True):
            assert x["success"] == y["success"], (table, e.type)
            if e.row_level:
                assert x["result"]["unexpected_count"] == y["result"]["unexpected_count"], (table, e.type)


def test_suite_column_missing_from_a_new_table_is_a_clear_error(root: str) -> None:
    import pytest

    from pipelines.errors import ValidationStepError

    spec = spec_with([fault("schema_change")])
    with pytest.raises(ValidationStepError, match=r"transactions.json: expectations\[5\].*\['mcc'\] not in the table"):
        run_interval(spec, Interval.for_date(D), root=root)


def test_data_docs_are_gx_sites_over_gx_result_documents(root: str) -> None:
    """The site is built by GX's own Data Docs builder, over GX validation result documents."""
    import json
    from pathlib import Path

    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )

    spec = spec_with([])
    run_interval(spec, Interval.for_date(D), root=root)
    docs = Path(root, spec.name, "_lockstep", "data_docs")
    index = (docs / "index.html").read_text()
    assert "Great Expectations" in index or "great_expectations" in index.lower()
    for region in spec.regions:
        assert f"{D}_{region}" in index
        assert (docs / D / f"{region}.json").exists()  # the raw results, beside the site
    stored = sorted((docs / "_results").rglob("*.json"))
    assert stored
    doc = expectationSuiteValidationResultSchema.load(json.loads(stored[0].read_text()))
    assert doc.results and doc.statistics["evaluated_expectations"] == len(doc.results)
    pages = sorted((docs / "validations").rglob("*.html"))
    assert len(pages) == len(stored)
    assert "expect_column_values_to_be_unique" in "".join(p.read_text() for p in pages) or \
        "values must be unique" in "".join(p.read_text() for p in pages)
    assert date.fromisoformat(D)
