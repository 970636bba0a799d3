"""One verdict everywhere (issue 23): ``lockstep validate`` reports what the gate decides on,
from the same evidence. A region whose 20% of rows were quarantined is blocked by the gate
(``validation.quarantine_cap``); validate must say so (it used to re-validate the table left
after quarantine and report 0 failed, 0 quarantined). Real CLI, real Delta, real suites."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from pipelines.runner import run_interval
from tests.test_bad_input import cli
from tests.test_bindings import D1, lake
from tests.test_evidence import deliver_all


def test_validate_agrees_with_the_gate_on_a_quarantine_cap(tmp_path: Path) -> None:
    spec = lake(tmp_path, regions=3)
    deliver_all(spec, tmp_path, D1.ds)
    r0, r1 = spec.regions[0], spec.regions[1]
    path = tmp_path / "landing" / r0 / f"{D1.ds}.parquet"
    df = pl.read_parquet(path)
    bad = df.height // 5  # a fifth of r0's rows in a channel the suite quarantines
    df.with_columns(pl.when(pl.int_range(pl.len()) < bad).then(pl.lit("kiosk")).otherwise(pl.col("channel"))
                    .alias("channel")).write_parquet(path)
    decision = run_interval(spec, D1).decision
    assert decision is not None and not decision.certified
    gate_blocks = {(r["region"], r["check_id"]) for r in decision.reasons}
    assert (r0, "rollup.quarantine.transactions") in gate_blocks

    res = cli("validate", str(spec.path), "--date", D1.ds, "--json")
    assert res.exit_code == 1, res.output
    regions = json.loads(res.stdout)["regions"]
    mine = regions[r0]
    assert mine["quarantined"] == bad and "rollup.quarantine.transactions" in mine["blocking"]
    assert mine["failed"] >= 1 and any("quarantined (20.00%" in m for m in mine["messages"])
    assert regions[r1]["blocking"] == [] and regions[r1]["quarantined"] == 0
    # every region the gate blocked on validation evidence, validate blocks too (and no other)
    gate_regions = {reg for reg, cid in gate_blocks if cid.startswith(("rollup.", "evidence."))}
    assert {reg for reg, s in regions.items() if s["blocking"]} == gate_regions

    text = cli("validate", str(spec.path), "--date", D1.ds)
    assert text.exit_code == 1 and f"{bad:,}" in text.output and "rollup.quarantine" in text.output
    # piped, the table is plain lines: the region's line names its blocking checks verbatim
    line = next(x for x in text.output.splitlines() if x.startswith(f"{r0}\t"))
    assert all(cid in line for cid in mine["blocking"][:3]), (line, mine["blocking"])
    # piped, explain's sentences are whole lines too (rich folded them at 80 columns)
    told = cli("explain", str(spec.path), "--date", D1.ds).output.splitlines()
    for reason in decision.reasons:
        assert any(reason["message"] in x for x in told), (reason, told)
    assert max(map(len, told)) > 80


def test_a_cross_region_check_marks_only_the_region_at_fault(tmp_path: Path) -> None:
    """One region delivered nothing: ``generation.complete`` (region ``*``) names it. Only its
    cell is blocked; the others are held by it, in the matrix, ``status`` and ``status --json``."""
    from pipelines.matrix import certification_matrix
    from pipelines.runner import certify, run_region
    from tests.test_evidence import deliver

    spec = lake(tmp_path, regions=3)
    *delivered, missing = spec.regions
    for region in delivered:
        deliver(spec, tmp_path, region, D1.ds)
        run_region(spec, D1, region)
    decision = certify(spec, D1)
    assert not decision.certified
    assert any(r["region"] == "*" for r in decision.reasons)  # a cross-region check is among the reasons
    cells = certification_matrix(spec)["cells"][D1.key]
    assert cells[missing]["state"] == "blocked" and cells[missing]["at_fault"] == [missing]
    for region in delivered:
        assert cells[region]["state"] == "held", cells[region]
        assert cells[region]["held_by"] == [missing] and cells[region]["reason"].startswith(f"held by {missing}: ")

    st = json.loads(cli("status", str(spec.path), "--json").stdout)
    assert [b["at_fault"] for b in st["blocked"]] == [[missing]]
    text = cli("status", str(spec.path)).output
    assert f"(at fault: {missing})" in text and "held" in text


def test_a_held_cell_names_the_region_at_fault_and_the_check_never_its_data(tmp_path: Path) -> None:
    """A region held by another's block reads ``held by <region>: <check id>``: the same cell
    text in the matrix (which ``status`` and the view print) and in a region-scoped operator's
    view, never carrying the other region's message (its counts and shares)."""
    from pipelines.airflow.ui.governed import scoped
    from pipelines.airflow.ui.pages import render_matrix
    from pipelines.matrix import certification_matrix

    spec = lake(tmp_path, regions=3)
    deliver_all(spec, tmp_path, D1.ds)
    r0, r1, r2 = spec.regions
    path = tmp_path / "landing" / r0 / f"{D1.ds}.parquet"
    df = pl.read_parquet(path)
    df.with_columns(pl.when(pl.int_range(pl.len()) < df.height // 5).then(pl.lit("kiosk")).otherwise(pl.col("channel"))
                    .alias("channel")).write_parquet(path)
    decision = run_interval(spec, D1).decision
    assert decision is not None and not decision.certified
    own = next(r for r in decision.reasons if r["region"] == r0)
    assert "quarantined" in own["message"]  # the message states r0's data

    m = certification_matrix(spec)
    cells = m["cells"][D1.key]
    assert cells[r0]["state"] == "blocked" and own["message"] in cells[r0]["reason"]
    for region in (r1, r2):
        assert cells[region]["state"] == "held"
        assert cells[region]["reason"] == f"held by {r0}: {cells[region]['check_id']}", cells[region]
        assert own["message"] not in cells[region]["reason"] and "%" not in cells[region]["reason"]

    mine = scoped(m, spec, [r1])  # what r1's operator is shown
    assert list(mine["cells"][D1.key]) == [r1]
    html = render_matrix("/lockstep", mine)
    assert f"held by {r0}: " in html and "quarantined" not in html and "%" not in html


def test_the_suggested_command_names_a_path_given_pipeline_by_its_path(tmp_path: Path) -> None:
    """``lockstep status path/to/spec.yaml`` suggests ``lockstep explain path/to/spec.yaml``: the
    spec's name (``fraud_features``) would load another pipeline (./dags) or none at all."""
    import shlex

    spec = lake(tmp_path, regions=2)
    deliver_all(spec, tmp_path, D1.ds)
    path = tmp_path / "landing" / spec.regions[0] / f"{D1.ds}.parquet"
    df = pl.read_parquet(path)
    df.with_columns(pl.when(pl.int_range(pl.len()) < df.height // 5).then(pl.lit("kiosk")).otherwise(pl.col("channel"))
                    .alias("channel")).write_parquet(path)
    decision = run_interval(spec, D1).decision
    assert decision is not None and not decision.certified

    out = cli("status", str(spec.path))
    assert out.exit_code == 0, out.output
    hints = [line for line in out.output.splitlines() if line.startswith("why: ")]
    assert len(hints) == 1, out.output
    args = shlex.split(hints[0].removeprefix("why: "))
    assert args[:3] == ["lockstep", "explain", str(spec.path)], args
    follow = cli(*args[1:])  # the suggested command, as the user would run it
    assert follow.exit_code == 0, follow.output
    assert "rollup.quarantine.transactions" in follow.output and D1.ds in follow.output

