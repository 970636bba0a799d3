"""Causes across intervals (issue 23), from the control plane, through the real CLI.

1. An interval certified on incomplete history (its 7-day lookback held one day) whose earlier
   day is delivered afterwards is **stale**: ``status`` (text and --json), the matrix and
   ``explain`` say so, naming the input partition; ``backfill`` plans it (todo, why) and
   re-certifies it, after which it is no longer stale.
2. A block on D+1 whose lookback holds D, itself blocked: ``explain`` for D+1 names D.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.certify import active_certifications
from pipelines.matrix import certification_matrix
from pipelines.runner import run_interval
from pipelines.spec import Interval
from tests.test_bad_input import cli
from tests.test_bindings import D1, D2, lake
from tests.test_evidence import deliver, deliver_all


def test_a_certification_on_inputs_changed_since_is_stale_until_backfill_recertifies_it(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D2.ds)
    first = run_interval(spec, D2).decision  # the 2nd, certified on a lookback holding one day
    assert first is not None and first.certified
    path = str(spec.path)
    assert json.loads(cli("status", path, "--json").stdout)["stale"] == []

    deliver_all(spec, tmp_path, D1.ds)  # the 1st, delivered late: inside the 2nd's lookback
    assert run_interval(spec, D1).decision.certified  # type: ignore[union-attr]

    st = json.loads(cli("status", path, "--json").stdout)
    assert [s["interval"] for s in st["stale"]] == [D2.key]
    changes = st["stale"][0]["changes"]
    assert {c["region"] for c in changes} == set(spec.regions)
    assert {(c["input"], c["input_interval"]) for c in changes} == {("raw/transactions", D1.key)}
    assert all(c["newer_version"] > c["bound_version"] for c in changes)
    text = cli("status", path).output
    assert f"stale {D2.key}: raw/transactions {D1.key} changed since certification" in text
    assert f"lockstep backfill {path} --start {D2.ds} --end {D2.ds}" in text  # named as the user named it
    cell = certification_matrix(spec)["cells"][D2.key][spec.regions[0]]
    assert cell["state"] == "stale" and cell["stale"] and D1.key in cell["reason"]
    assert certification_matrix(spec)["cells"][D1.key][spec.regions[0]]["state"] == "certified"
    ex = json.loads(cli("explain", path, "--date", D2.ds, "--json").stdout)
    assert ex["stale"] and ex["stale"]["changes"][0]["input_interval"] == D1.key
    assert f"stale: raw/transactions {D1.key} changed since certification" in cli("explain", path, "--date",
                                                                                  D2.ds).output

    plan = json.loads(cli("backfill", path, "--start", D1.ds, "--end", D2.ds, "--dry-run", "--json").stdout)
    rows = {p["interval"]: p for p in (plan["plan"] if isinstance(plan, dict) else plan)}
    assert rows[D1.key]["status"] == "done"
    assert rows[D2.key]["status"] == "todo" and "stale" in rows[D2.key]["why"] and D1.key in rows[D2.key]["why"]
    res = cli("backfill", path, "--start", D1.ds, "--end", D2.ds, "--json")
    assert res.exit_code == 0, res.output
    now = active_certifications(spec)[D2.key]
    assert now.generation_id != first.generation_id and now.log_version > first.log_version  # type: ignore[operator]
    assert json.loads(cli("status", path, "--json").stdout)["stale"] == []
    again = json.loads(cli("backfill", path, "--start", D1.ds, "--end", D2.ds, "--dry-run", "--json").stdout)
    assert {p["status"] for p in (again["plan"] if isinstance(again, dict) else again)} == {"done"}


def test_explain_names_an_earlier_blocked_interval_inside_the_lookback(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    r0 = spec.regions[0]
    deliver_all(spec, tmp_path, D1.ds, D2.ds)
    deliver(spec, tmp_path, r0, D1.ds, bad=True)  # the 1st blocks in r0 ...
    assert not run_interval(spec, D1).decision.certified  # type: ignore[union-attr]
    deliver(spec, tmp_path, r0, D2.ds, bad=True)  # ... and so does the 2nd, whose lookback holds the 1st
    assert not run_interval(spec, D2).decision.certified  # type: ignore[union-attr]
    ex = json.loads(cli("explain", str(spec.path), "--date", D2.ds, "--json").stdout)
    assert [c["interval"] for c in ex["window_causes"]] == [D1.key]
    assert ex["window_causes"][0]["state"] == "blocked" and r0 in ex["window_causes"][0]["regions"]
    text = " ".join(cli("explain", str(spec.path), "--date", D2.ds).output.split())
    assert f"cause may lie in {D1.key}" in text and f"--date {D1.key}" in text, text
    assert "column_values_to_match_regex[currency]" in text  # check ids shown as they are
    # the 1st itself names nothing earlier; a later day outside the lookback would not name it
    assert json.loads(cli("explain", str(spec.path), "--date", D1.ds, "--json").stdout)["window_causes"] == []
    far = Interval.for_date("2026-01-10")
    from pipelines.certify.stale import lookback_intervals

    assert D1.key not in lookback_intervals(spec, far, spec.features[0].lookback)
