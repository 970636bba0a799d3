"""Suite files: the shipped ones load in GX unchanged; every bad suite is one clear error
naming the file and the expectation, raised before any data is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.errors import ValidationStepError
from pipelines.validation.suites import check_columns, load_suite
from tests.conftest import REPO

SHIPPED = sorted((REPO / "expectations").glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_suites_load_in_gx_unchanged(path: Path) -> None:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    raw = json.loads(path.read_text())
    gx_suite = ExpectationSuite(name=raw["name"], expectations=[ExpectationConfiguration(**e) for e in raw["expectations"]])
    ours = load_suite(path)
    assert len(gx_suite.expectations) == len(ours.expectations) > 0


def test_flagship_tables_have_suites() -> None:
    assert {p.stem for p in SHIPPED} == {"transactions", "merchant_risk", "card_features", "merchant_features"}


def suite(tmp_path: Path, expectations: object, text: str | None = None) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(text if text is not None else json.dumps({"name": "bad", "expectations": expectations}))
    return p


@pytest.mark.parametrize(
    ("expectations", "text", "message"),
    [
        (None, "{not json", "invalid JSON at line 1"),
        (None, '{"name": "x"}', "not an ExpectationSuite"),
        ([{"type": "expect_column_values_to_be_purple", "kwargs": {"column": "a"}}], None,
         "expectations[0] (expect_column_values_to_be_purple): unknown expectation type"),
        ([{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
           "meta": {"lockstep": {"policy": "quarantine"}}}], None,
         "expectations[0] (expect_table_row_count_to_be_between): policy 'quarantine' needs a row-level"),
        ([{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"},
           "meta": {"lockstep": {"policy": "shrug"}}}], None, "policy 'shrug' is not one of"),
        (["just a string"], None, "expectations[0]: needs a 'type' string"),
    ],
)
def test_bad_suites(tmp_path: Path, expectations: object, text: str | None, message: str) -> None:
    path = suite(tmp_path, expectations, text)
    with pytest.raises(ValidationStepError) as exc:
        load_suite(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_column_the_table_lacks(tmp_path: Path) -> None:
    path = suite(tmp_path, [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
                            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "nope"}}])
    with pytest.raises(ValidationStepError, match=r"expectations\[1\] \(expect_column_values_to_be_unique\): column\(s\) \['nope'\]"):
        check_columns(load_suite(path), ["a", "b"])
