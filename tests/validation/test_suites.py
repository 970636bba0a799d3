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
    ours = load_suite(path, parameters={"feature_version": "1", "feature_versions": ["1"]})
    assert len(gx_suite.expectations) == len(ours.expectations) > 0


def test_suites_refer_to_the_feature_version_through_gx_parameters(tmp_path: Path) -> None:
    from pipelines.errors import ValidationStepError
    from pipelines.validation.suites import suite_parameters
    from tests.conftest import make_spec

    spec = make_spec(regions=2, rows=100)
    t = spec.table("card_features")
    path = REPO / "expectations" / "card_features.json"
    v1 = load_suite(path, parameters=suite_parameters(spec, t))
    [e] = [e for e in v1.expectations if e.kwargs.get("column") == "feature_version"]
    assert e.kwargs["value_set"] == ["1"]  # resolved from the spec, not repeated in the suite
    data = spec.model_dump(mode="json")
    data["features"] = [{**f, "version": "2"} if f["output"] == "card_features" else f for f in data["features"]]
    from pipelines.spec import parse_spec

    v2 = load_suite(path, parameters=suite_parameters(parse_spec(data, "v2"), t))
    assert [x.kwargs["value_set"] for x in v2.expectations if x.kwargs.get("column") == "feature_version"] == [["2"]]
    assert v1.sha != v2.sha  # evidence validated under v1's suite does not count for v2
    with pytest.raises(ValidationStepError, match=r"expectations\[6\] .*'value_set' refers to \$PARAMETER "
                                                  r"'feature_versions', which Lockstep does not supply"):
        load_suite(path, parameters=suite_parameters(spec, spec.table("transactions")))


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
