"""``diff`` against a brute-force comparison on randomised tables, and the CLI contract."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipelines.reconcile.diff import diff_frames

VALUES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))
TEXT = st.one_of(st.none(), st.text(max_size=12))


def same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y and (x is None) == (y is None)


@st.composite
def table_pair(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame]:
    keys_a = draw(st.sets(st.integers(0, 60), max_size=40))
    keys_b = draw(st.sets(st.integers(0, 60), max_size=40)) if draw(st.booleans()) else set(keys_a)
    rows_a = {k: (draw(VALUES), draw(TEXT)) for k in sorted(keys_a)}
    rows_b = {}
    for k in sorted(keys_b):
        if k in rows_a and draw(st.integers(0, 3)) > 0:
            rows_b[k] = rows_a[k]  # mostly unchanged
        else:
            rows_b[k] = (draw(VALUES), draw(TEXT))

    def frame(rows: dict[int, tuple[Any, Any]]) -> pl.DataFrame:
        return pl.DataFrame({"k": list(rows), "x": [v[0] for v in rows.values()], "s": [v[1] for v in rows.values()]},
                            schema={"k": pl.Int64, "x": pl.Float64, "s": pl.String})

    a, b = frame(rows_a), frame(rows_b)
    return a.sample(fraction=1.0, shuffle=True, seed=1), b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table_pair(), st.sampled_from([1, 4, 256]))
def test_diff_matches_brute_force(pair: tuple[pl.DataFrame, pl.DataFrame], buckets: int) -> None:
    a, b = pair
    res = diff_frames(a, b, keys=["k"], buckets=buckets)
    ra = {r["k"]: r for r in a.iter_rows(named=True)}
    rb = {r["k"]: r for r in b.iter_rows(named=True)}
    changed = {k: sorted(c for c in ("x", "s") if not same(ra[k][c], rb[k][c])) for k in ra.keys() & rb.keys()}
    changed = {k: v for k, v in changed.items() if v}
    js = res.as_json()
    assert js["rows_a"] == a.height and js["rows_b"] == b.height
    assert sorted(res.report.only_in_a["k"].to_list()) == sorted(ra.keys() - rb.keys())
    assert sorted(res.report.only_in_b["k"].to_list()) == sorted(rb.keys() - ra.keys())
    got = {r["k"]: sorted(r["columns"]) for r in res.report.changed.iter_rows(named=True)}
    assert got == changed
    counts = {c: sum(c in v for v in changed.values()) for c in ("x", "s")}
    assert js["changed_columns"] == {c: n for c, n in counts.items() if n}
    assert res.equal == (not changed and ra.keys() == rb.keys())


def _write(tmp: Path) -> tuple[str, str]:
    a = pl.DataFrame({"id": [1, 2, 3, 4], "region": ["x", "x", "y", "y"], "v": [1.0, 2.0, 3.0, 4.0]})
    b = pl.DataFrame({"id": [1, 2, 3, 5], "region": ["x", "x", "y", "y"], "v": [1.0, 2.5, 3.0, 5.0]})
    a.write_delta(str(tmp / "a"))
    b.write_parquet(tmp / "b.parquet")
    return str(tmp / "a"), str(tmp / "b.parquet")


def test_cli_diff_json_output_and_exit_codes(tmp_path: Path) -> None:
    from pipelines.cli import _register, app

    _register()
    runner = CliRunner()
    ua, ub = _write(tmp_path)
    out = tmp_path / "keys.parquet"
    res = runner.invoke(app, ["diff", ua, ub, "--key", "id,region", "--json", "--output", str(out)])
    assert res.exit_code == 1, res.output
    js = json.loads(res.stdout)
    assert (js["rows_a"], js["rows_b"], js["only_in_a"], js["only_in_b"], js["changed"]) == (4, 4, 1, 1, 1)
    assert js["changed_columns"] == {"v": 1}
    assert js["samples"]["changed"] == [[2, "x"]]
    keys = pl.read_parquet(out).sort("id")
    assert keys.select("id", "kind").rows() == [(2, "changed"), (4, "only_in_a"), (5, "only_in_b")]
    repeated = runner.invoke(app, ["diff", ua, ub, "--key", "id", "--key", "region", "--json"])
    assert repeated.exit_code == 1 and json.loads(repeated.stdout) == js  # --key a --key b is --key a,b
    same_res = runner.invoke(app, ["diff", ua, ua, "--key", "id"])
    assert same_res.exit_code == 0, same_res.output
    err = runner.invoke(app, ["diff", ua, str(tmp_path / "nope"), "--key", "id"])
    assert err.exit_code == 2
    err = runner.invoke(app, ["diff", ua, ub, "--key", "missing_col"])
    assert err.exit_code == 2


def test_streaming_diff_matches_the_in_memory_diff_when_hashes_spill_and_rows_are_read_again(tmp_path: Path) -> None:
    """Delta in, one batch per few rows, hashes spilled to disk and values read again in a
    second pass: the same answer as diffing the frames in memory."""
    import numpy as np

    import pipelines.reconcile.diff as D
    from pipelines.reconcile.sides import _HashStore

    rng = np.random.default_rng(4)
    n = 5_000
    a = pl.DataFrame({"k": np.arange(n), "s": [f"v{i % 97}" for i in range(n)], "x": rng.random(n)})
    x = a["x"].to_numpy().copy()
    x[[5, 77, 4000]] = -1.0
    b = a.with_columns(x=pl.Series(x)).filter(pl.col("k") != 12).vstack(
        pl.DataFrame({"k": [n + 1], "s": ["new"], "x": [0.5]})).sample(fraction=1.0, shuffle=True, seed=2)
    a.write_delta(str(tmp_path / "a"))
    for part in range(3):  # B in several files
        b.slice(part * 2000, 2000).write_delta(str(tmp_path / "b"), mode="append")
    want = diff_frames(a, b, keys=["k"]).as_json()
    old_rows, old_chunk = D.BATCH_ROWS, _HashStore.CHUNK
    D.BATCH_ROWS, _HashStore.CHUNK = 700, 1000
    try:
        sa, sb = D.open_source(str(tmp_path / "a")), D.open_source(str(tmp_path / "b"))
        assert sa is not None and sb is not None
        kept = D.diff_sources(sa, sb, keys=["k"]).as_json()
        streamed = D.diff_sources(sa, sb, keys=["k"], memory_budget=1).as_json()  # spill + second read
    finally:
        D.BATCH_ROWS, _HashStore.CHUNK = old_rows, old_chunk
    for got in (kept, streamed, D.diff(str(tmp_path / "a"), str(tmp_path / "b"), keys=["k"]).as_json()):
        assert {k: got[k] for k in ("rows_a", "rows_b", "only_in_a", "only_in_b", "changed", "changed_columns")} == {
            k: want[k] for k in ("rows_a", "rows_b", "only_in_a", "only_in_b", "changed", "changed_columns")}
        assert sorted(got["samples"]["changed"]) == [5, 77, 4000]
        assert got["samples"]["only_in_a"] == [12] and got["samples"]["only_in_b"] == [n + 1]
