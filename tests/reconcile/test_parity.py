"""Parity: the digest tree against known answers, strict residency, traffic, and the
cross-region check naming the region that differs."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.reconcile import run_checks
from pipelines.reconcile.descent import compare
from pipelines.reconcile.sides import Side
from tests.reconcile.conftest import DAY, REGIONS, put, ref_frame, tiny_spec


def sides(a: pl.DataFrame, b: pl.DataFrame, cols: list[str]) -> tuple[Side, Side]:
    return Side(a, ["k"], cols, name="a"), Side(b, ["k"], cols, name="b")


def test_identical_tables_answer_in_one_round() -> None:
    a = ref_frame(1000)
    rep = compare(*sides(a, a.sample(fraction=1.0, shuffle=True, seed=3), ["score", "tier"]))
    assert rep.in_sync and rep.differing == 0
    assert rep.traffic.total == 16


def test_known_differences() -> None:
    a = ref_frame(1000)
    b = (a.filter(pl.col("k") != 7)
         .with_columns(score=pl.when(pl.col("k").is_in([3, 500])).then(-1.0).otherwise(pl.col("score")),
                       tier=pl.when(pl.col("k") == 500).then(pl.lit("z")).otherwise(pl.col("tier")))
         .vstack(pl.DataFrame({"k": [5000], "score": [1.0], "tier": ["a"]})))
    rep = compare(*sides(a, b, ["score", "tier"]))
    assert rep.only_in_a["k"].to_list() == [7]
    assert rep.only_in_b["k"].to_list() == [5000]
    changed = {r["k"]: sorted(r["columns"]) for r in rep.changed.iter_rows(named=True)}
    assert changed == {3: ["score"], 500: ["score", "tier"]}
    assert rep.changed_columns == {"score": 2, "tier": 1}
    assert {s["key"]["k"] for s in rep.samples} == {3, 500}
    assert rep.samples[0]["columns"]["score"]["b"] == -1.0


def test_strict_residency_moves_no_values_but_names_keys_and_columns() -> None:
    a = ref_frame(1000)
    b = a.with_columns(tier=pl.when(pl.col("k") == 11).then(pl.lit("secret")).otherwise(pl.col("tier")))
    rep = compare(*sides(a, b, ["score", "tier"]), strict=True)
    assert rep.samples == []
    assert rep.changed["k"].to_list() == [11] and rep.changed["columns"].to_list() == [["tier"]]


def test_traffic_scales_with_the_difference_not_the_table() -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    a = pl.DataFrame({"k": np.arange(n), "v": rng.random(n)})
    idx = rng.choice(n, 200, replace=False)
    v = a["v"].to_numpy().copy()
    v[idx] += 1
    b = a.with_columns(v=pl.Series(v))
    rep = compare(Side(a, ["k"], ["v"]), Side(b, ["k"], ["v"]))
    assert rep.changed.height == 200
    table_bytes = b.estimated_size()
    assert rep.traffic.total < 0.05 * table_bytes, (rep.traffic.total, table_bytes)


def test_cross_region_check_names_the_stale_region_and_keys(root: str) -> None:
    spec = tiny_spec({"parity": [{"table": "ref", "keys": ["k"]}], "schema_parity": {"enabled": False}})
    for r in REGIONS:
        df = ref_frame()
        if r == "r2":
            df = df.with_columns(score=pl.when(pl.col("k").is_in([4, 9])).then(99.0).otherwise(pl.col("score")))
        put(spec, root, r, "reference", "ref", df)
    results = [r for r in run_checks(spec, DAY, root=root) if r.check_type == "parity"]
    by_region = {r.region: r for r in results}
    assert by_region["r1"].success and by_region["r3"].success
    bad = by_region["r2"]
    assert not bad.success and bad.blocking
    assert sorted(bad.details["changed_keys"]) == [4, 9]
    assert bad.details["changed_columns"] == {"score": 2}
    assert bad.details["bytes_moved"] > 0


def test_cross_region_check_passes_when_all_hold_the_same(root: str) -> None:
    spec = tiny_spec({"parity": [{"table": "ref", "keys": ["k"], "residency": "strict"}]})
    for r in REGIONS:
        put(spec, root, r, "reference", "ref", ref_frame())
    results = [r for r in run_checks(spec, DAY, root=root) if r.check_type == "parity"]
    assert len(results) == 3 and all(r.success for r in results)
