"""The hourly demo end to end: 24 hourly intervals of fraud_features_hourly for 12 regions,
a stale-reference hour blocked then repaired, a late-data hour re-certified alone."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.certify import active_certifications, decisions, read_certified
from pipelines.demo import DemoStep, hourly_flagship, run_hourly_demo
from pipelines.storage import read_table, table_uri

pytestmark = pytest.mark.slow  # 24 hours x 12 regions: a few minutes on two cores

ROWS = 4800  # per region and day: ~200 an hour, enough for the row-count expectation


@pytest.fixture(scope="module")
def hourly(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[DemoStep]]:
    root = str(tmp_path_factory.mktemp("hourly") / "lake")
    return root, run_hourly_demo(hourly_flagship(), rows=ROWS, root=root)


def test_story(hourly: tuple[str, list[DemoStep]]) -> None:
    root, steps = hourly
    status = {s.label: s.run.decision.status for s in steps}  # type: ignore[union-attr]
    clean = {f"2026-01-01T{h:02d} clean": "certified" for h in range(24) if h not in (7, 13)}
    assert status == {
        **clean,
        "2026-01-01T07 late_rows": "certified",
        "2026-01-01T13 stale_reference": "blocked",
        "2026-01-01T13 after re-running ap-south": "certified",
        "2026-01-01T07 late rows of us-east arrived": "certified",
    }
    by = {s.label: s for s in steps}
    blocked = by["2026-01-01T13 stale_reference"].run.decision
    assert blocked is not None
    assert {(r["check_id"], r["region"]) for r in blocked.reasons} == {("parity.merchant_risk", "ap-south")}
    # the late rows: exactly one (region, interval) written again, the other regions skipped
    late = by["2026-01-01T07 late rows of us-east arrived"].run
    assert [r.region for r in late.regions] == ["us-east"]
    first = next(r for r in by["2026-01-01T07 late_rows"].run.regions if r.region == "us-east")
    assert late.regions[0].tables[0].rows > first.tables[0].rows


def test_every_hour_certified_once_in_force_and_partitioned(hourly: tuple[str, list[DemoStep]]) -> None:
    root, _ = hourly
    spec = hourly_flagship()
    active = active_certifications(spec, root=root)
    assert sorted(active) == [f"2026-01-01T{h:02d}" for h in range(24)]
    log = decisions(spec, root=root)
    assert sum(d.interval == "2026-01-01T07" and d.certified for d in log) == 2  # first, then with the late rows
    for region in ("us-east", "eu-west"):
        feats = read_table(table_uri(root, spec.name, region, "features", "card_features")).collect()
        assert feats["txn_id"].is_unique().all(), "no key in two hour partitions"
        assert sorted(set(feats["hour"])) == [f"{h:02d}" for h in range(24)]
        hour_of = feats["event_time"].dt.hour().cast(pl.String).str.zfill(2)
        assert (hour_of == feats["hour"]).all()
        raw = read_table(table_uri(root, spec.name, region, "raw", "transactions")).collect()
        assert sorted(raw["txn_id"]) == sorted(feats["txn_id"])
    merchants = read_certified(spec, "merchant_features", "ap-south", at="2026-01-01T13", root=root).collect()
    assert merchants["merchant_id"].is_unique().all() and set(merchants["hour"]) == {"13"}


def test_cli_hourly_demo_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pipelines.cli import _register, app

    _register()
    out = CliRunner().invoke(app, ["demo", "--hourly", "--hours", "2", "--rows", str(ROWS),
                                   "--root", str(tmp_path / "lake"), "--json"])
    assert out.exit_code == 0, out.output
    import json

    steps = json.loads(out.stdout)
    assert [s["step"] for s in steps] == ["2026-01-01T00 clean", "2026-01-01T01 clean"]
    assert all(s["decision"]["status"] == "certified" for s in steps)
