"""Rollback is per interval by default (issue 23): it re-instates an earlier certified generation
*of that interval*, and what consumers read for every other interval is unchanged. Moving the
pipeline's generation in force back is a separate, explicit ``--pipeline-wide`` action that
states what it changes and needs ``--yes`` (refused, naming the changes, in --json or when
not on a terminal). Through the real ``lockstep`` command on a 2-region lake delivered as files.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.certify import active_certifications, current_certified, decisions, read_certified
from pipelines.runner import run_interval
from tests.test_bad_input import cli
from tests.test_bindings import D1, D2, lake
from tests.test_evidence import deliver, deliver_all


def test_rollback_reinstates_a_generation_of_its_interval_only(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds, D2.ds)
    g1a = run_interval(spec, D1).decision
    g2 = run_interval(spec, D2).decision
    for region in spec.regions:  # the 1st re-delivered (a correction): a second certified generation of it
        deliver(spec, tmp_path, region, D1.ds, seed=11)
    g1b = run_interval(spec, D1).decision
    assert g1a and g2 and g1b and g1a.certified and g2.certified and g1b.certified
    assert g1a.generation_id != g1b.generation_id
    r0 = spec.regions[0]
    d2_rows = read_certified(spec, "card_features", r0).collect()

    res = cli("rollback", str(spec.path), "--to", g1a.generation_id, "--reason", "correction was wrong",
              "--from", g1b.generation_id, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["kind"] == "rollback" and out["interval"] == D1.key
    assert out["bindings"]["reviewed"]["scope"] == "interval" and out["bindings"]["reviewed"]["revokes"] == []
    active = active_certifications(spec)
    assert active[D1.key].generation_id == g1a.generation_id  # the interval re-instated
    assert active[D2.key].generation_id == g2.generation_id  # the other interval untouched
    assert current_certified(spec).generation_id == g2.generation_id  # type: ignore[union-attr]
    assert read_certified(spec, "card_features", r0).collect().equals(d2_rows)
    assert read_certified(spec, "card_features", r0, at=D1.key).collect().height  # reads g1a's versions
    assert current_certified(spec, at=D1.key).generation.members == g1a.generation.members  # type: ignore[union-attr]

    # again: nothing to roll back, and the message says how to move the pipeline instead
    res = cli("rollback", str(spec.path), "--to", g1a.generation_id, "--reason", "again")
    assert res.exit_code != 0 and "nothing to roll back" in res.output and "--pipeline-wide" in res.output


def test_a_pipeline_wide_rollback_states_what_changes_and_needs_yes(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds, D2.ds)
    g1 = run_interval(spec, D1).decision
    g2 = run_interval(spec, D2).decision
    assert g1 and g2 and g1.certified and g2.certified
    n = len(decisions(spec))
    base = ["rollback", str(spec.path), "--to", g1.generation_id, "--reason", "bad 2nd", "--pipeline-wide"]

    for args in ([*base, "--json"], base):  # --json, and not a terminal (click's runner): refused, naming it
        res = cli(*args)
        assert res.exit_code != 0 and "Traceback" not in res.output
        text = json.loads(res.stdout)["error"]["message"] if "--json" in args else res.output
        assert "--yes" in text and D2.key in text and "stop being in force" in text
        assert f"from {g2.generation_id} to {g1.generation_id}" in text
    assert len(decisions(spec)) == n  # nothing recorded

    res = cli(*base, "--yes", "--json")
    assert res.exit_code == 0, res.output
    reviewed = json.loads(res.stdout)["bindings"]["reviewed"]
    assert (reviewed["scope"], reviewed["revokes"]) == ("pipeline", [D2.key])
    assert D2.key not in active_certifications(spec)
    assert current_certified(spec).generation_id == g1.generation_id  # type: ignore[union-attr]
