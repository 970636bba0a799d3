"""`lockstep explain` as an operator reads it: what blocks first, each in full; warnings grouped
one line per check; filters by region and severity (JSON too); no internal reprs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import small_spec_data

D1, D2 = "2026-01-01", "2026-01-02"


def cli(*args: str) -> Any:
    from pipelines.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args), terminal_width=200)


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three regions; on the 2nd, eu-central's amounts drift far out of the suite's bounds and
    eu-west's reference is stale: blocked, with lookback warnings in every region."""
    tmp = tmp_path_factory.mktemp("explain")
    data = small_spec_data(regions=3, rows=300)
    data["sources"]["transactions"]["faults"] = [
        {"kind": "drift", "regions": ["eu-central"], "dates": [D2], "magnitude": 5}]
    data["sources"]["merchant_risk"]["faults"] = [{"kind": "stale_reference", "regions": ["eu-west"], "dates": [D2]}]
    spec = tmp / "p.yaml"
    spec.write_text(yaml.safe_dump(data))
    args = [str(spec), "--root", str(tmp / "lake")]
    for day in (D1, D2):
        cli("run", args[0], "--date", day, *args[1:])
    return ["explain", args[0], "--date", D2, *args[1:]]


def test_what_blocks_comes_first_and_warnings_are_grouped(blocked: list[str]) -> None:
    res = cli(*blocked)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "np." not in out
    assert out.index("BLOCK") < out.index("warning(s)")
    assert "parity.merchant_risk region=eu-west" in out
    warns = [line for line in out.splitlines() if line.strip().startswith("warn ")]
    assert warns and len(warns) == len({line.split()[1] for line in warns}), warns
    assert any("3 regions (eu-central, eu-north, eu-west)" in line for line in warns), warns
    assert not any("BLOCK" in line for line in out.split("warning(s)")[1].splitlines())


def test_filters_by_region_and_severity(blocked: list[str]) -> None:
    res = cli(*blocked, "--region", "eu-central", "--blocking", "--json")
    assert res.exit_code == 0, res.output
    ex = json.loads(res.stdout)
    assert ex["failed"] and all(f["blocking"] and f["region"] in ("eu-central", "*") for f in ex["failed"])
    assert not any(f["check_id"] == "parity.merchant_risk" for f in ex["failed"])  # eu-west's
    assert set(ex["drift"]) <= {"eu-central"}
    north = json.loads(cli(*blocked, "--region", "eu-north", "--blocking", "--json").stdout)
    assert all(f["region"] == "*" for f in north["failed"])  # nothing of eu-north's own blocks
    bad = cli(*blocked, "--region", "xx-yy")
    assert bad.exit_code == 2 and "xx-yy" in bad.output


def test_messages_hold_plain_numbers(blocked: list[str]) -> None:
    ex = json.loads(cli(*blocked, "--json").stdout)
    assert ex["failed"] and not any("np." in f["message"] for f in ex["failed"])
    assert Path(blocked[1]).exists()
