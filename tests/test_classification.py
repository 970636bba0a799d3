"""Classification in the spec: personal columns are declared, checked by ``lockstep check``, and
hashed under the deployment's key."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.errors import SpecError
from pipelines.privacy import KEY_FILE, Masker
from pipelines.spec import load_spec, parse_spec
from tests.conftest import small_spec_data
from tests.test_bad_input import cli, one_clear_line


def _spec(tmp_path: Path, mutate: Any = None) -> Path:
    data = small_spec_data(regions=2, rows=100)
    data["storage"] = {"root": str(tmp_path / "lake")}
    if mutate:
        mutate(data)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in data["tables"] if t["name"] == name)


def test_the_flagship_classifies_card_and_transaction_ids() -> None:
    for name in ("fraud_features", "card_spend"):
        spec = load_spec(name)
        assert {"card_id", "txn_id"} <= spec.table("transactions").personal, name
    spec = load_spec("fraud_features")
    assert spec.table("card_features").classification["card_id"] == ["personal", "identifier"]
    assert spec.table("merchant_risk").personal == frozenset()


def test_check_passes_the_classified_flagship(tmp_path: Path) -> None:
    out = cli("check", str(_spec(tmp_path)), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["ok"] is True
    assert not (tmp_path / "lake").exists(), "check writes nothing"


def test_check_refuses_a_feature_table_copying_a_personal_column_undeclared(tmp_path: Path) -> None:
    def undeclare(data: dict[str, Any]) -> None:
        _table(data, "card_features")["classification"] = {"txn_id": ["personal", "identifier"]}

    line = one_clear_line(cli("check", str(_spec(tmp_path, undeclare))), "card_features", "'card_id'",
                          "transactions.card_id", "personal")
    assert "classification" in line
    out = cli("check", str(_spec(tmp_path, undeclare)), "--json")
    assert out.exit_code == 2 and "card_id" in out.output


def test_check_refuses_a_classified_column_the_table_does_not_have(tmp_path: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        _table(data, "transactions")["classification"]["card_idd"] = ["personal"]

    one_clear_line(cli("check", str(_spec(tmp_path, typo))), "transactions", "'card_idd'", "not a column")


def test_a_classification_outside_the_declared_columns_is_a_spec_error() -> None:
    data = small_spec_data(regions=2)
    t = _table(data, "transactions")
    t["columns"] = [{"name": "txn_id", "dtype": "String"}, {"name": "amount", "dtype": "Float64"}]
    t["classification"] = {"txn_id": ["personal"], "card_id": ["personal"]}
    with pytest.raises(SpecError, match=r"transactions.*\['card_id'\]"):
        parse_spec(data, "test")
    t["classification"] = {"txn_id": []}
    with pytest.raises(SpecError, match=r"classification.txn_id: name at least one"):
        parse_spec(data, "test")


def test_a_control_root_in_a_bucket_needs_the_hash_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def in_buckets(data: dict[str, Any]) -> None:
        data["storage"] = {"root": "s3://lake-{region}/p", "control_root": "s3://lake-control/p"}

    path = _spec(tmp_path, in_buckets)
    monkeypatch.delenv("LOCKSTEP_HASH_KEY", raising=False)
    one_clear_line(cli("check", str(path)), "LOCKSTEP_HASH_KEY is unset", "transactions: card_id, txn_id",
                   "s3://lake-control/p")
    monkeypatch.setenv("LOCKSTEP_HASH_KEY", "k" * 64)
    out = cli("check", str(path))
    assert "LOCKSTEP_HASH_KEY" not in out.output, out.output


def test_hashes_are_keyed_and_the_quickstart_key_stays_out_of_the_control_plane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = parse_spec(small_spec_data(regions=2), "test")
    root = str(tmp_path / "lake")
    monkeypatch.delenv("LOCKSTEP_HASH_KEY", raising=False)
    a = Masker(spec, root).value("eu-west:2026-01-01:00000001")
    key = tmp_path / "lake" / KEY_FILE
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert Masker(spec, root).value("eu-west:2026-01-01:00000001") == a  # another process: the same key
    assert a.startswith("hmac:") and len(a) == 5 + 16 and "00000001" not in a
    assert Masker(spec, root).value(1000000001) != a and Masker(spec, root).value(None) is None
    monkeypatch.setenv("LOCKSTEP_HASH_KEY", "another deployment")
    assert Masker(spec, root).value("eu-west:2026-01-01:00000001") != a


def test_parity_of_a_personal_keyed_table_names_its_keys_only_as_hashes(tmp_path: Path) -> None:
    """Parity over transactions (keyed by txn_id, personal): the keyed digest the regions
    publish and the differing keys the check names carry hashes, never the raw ids."""
    from pipelines.runner import run_interval
    from pipelines.spec import Interval
    from tests.leakscan import Personal, scan

    data = small_spec_data(regions=2, rows=100)
    data["reconcile"]["parity"] = [{"table": "transactions", "keys": ["txn_id"], "columns": ["amount"]}]
    spec = parse_spec(data, "test").with_path(Path(__file__).resolve().parents[1] / "dags" / "fraud_features.yaml")
    root = str(tmp_path / "lake")
    day = Interval.for_date("2026-01-01")
    run = run_interval(spec, day, root=root)
    parity = [c for c in run.checks if c.check_id == "parity.transactions" and not c.success]
    assert parity, "the regions' transactions differ"
    shown = json.dumps(parity[0].details, default=str)
    assert "hmac:" in shown and parity[0].details["only_in_region"], shown[:500]
    leaks = scan(Personal.of_source(spec, [day]), control_root=root)
    assert not leaks, {place: sorted(v)[:3] for place, v in leaks.items()}


@pytest.mark.parametrize("engine", ["auto", "gx"])
def test_results_on_a_personal_column_show_hashes_and_keep_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str,
) -> None:
    """Results of both engines: unexpected values, their counts' values and a non-aggregate
    observed value of a personal column are hashed; counts and other columns' values stay."""
    import polars as pl

    from pipelines.validation import run_suite
    from pipelines.validation.suites import Expectation

    monkeypatch.setenv("LOCKSTEP_HASH_KEY", "test-key")
    spec = parse_spec(small_spec_data(regions=2), "test")
    frame = pl.DataFrame({"txn_id": ["a:2026-01-01:00000001", "a:2026-01-01:00000001", "a:2026-01-01:00000002"],
                          "card_id": [3000000001, 3000000001, 3000000007], "amount": [1.0, -5.0, 3.0]})
    exps = [Expectation(0, "expect_column_values_to_be_unique", {"column": "txn_id"}, {}, "warn"),
            Expectation(1, "expect_column_max_to_be_between", {"column": "card_id", "max_value": 0}, {}, "warn"),
            Expectation(2, "expect_column_values_to_be_between", {"column": "amount", "min_value": 0}, {}, "warn"),
            Expectation(3, "expect_column_unique_value_count_to_be_between", {"column": "txn_id", "max_value": 1},
                        {}, "warn")]
    results = run_suite(frame, exps, engine)
    masker, personal = Masker(spec, str(tmp_path)), spec.table("transactions").personal
    shown = [masker.result(e.type, e.kwargs, r, personal) for e, r in zip(exps, results, strict=True)]
    text = json.dumps(shown, default=str)
    assert "00000001" not in text and "00000002" not in text and "3000000007" not in text, text[:800]
    unique = shown[0]["result"]
    assert unique["unexpected_count"] == 2 and unique["partial_unexpected_list"][0].startswith("hmac:")
    assert shown[1]["result"]["observed_value"].startswith("hmac:")
    assert shown[2]["result"]["partial_unexpected_list"] == [-5.0]  # amount is not classified
    assert shown[3]["result"]["observed_value"] == 2  # a count stays a count
    assert results[0]["result"]["partial_unexpected_list"][0] == "a:2026-01-01:00000001"  # the region's own copy
