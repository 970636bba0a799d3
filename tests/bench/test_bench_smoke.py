"""The benchmarks run end to end on tiny data and report their figures (figures come from
`lockstep bench`, not from here)."""

from __future__ import annotations

from typing import Any

from pipelines.bench import _measure, core, reconcile

FIGURE_KEYS = {"name", "value", "unit", "reference", "ratio", "goal", "met"}


def _phase(x: int) -> dict[str, Any]:
    _measure.mark_baseline()
    return {"seconds": 0.001 * x, "x": x}


def test_interleaved_rotates_repeats_and_reports_min_and_median() -> None:
    m = _measure.interleaved({"a": (_phase, (1,)), "b": (_phase, (2,))}, reps=3)
    assert set(m) == {"a", "b"}
    assert m["a"]["runs_s"] == [0.001] * 3 and m["b"]["min_s"] == m["b"]["median_s"] == 0.002
    assert m["a"]["value"]["x"] == 1 and m["a"]["rss_above_baseline_mib"] >= 0
    f = _measure.ratio_figure("b / a", m["b"], m["a"], "a", 3.0)
    assert FIGURE_KEYS <= set(f) and f["ratio"] == 2.0 and f["met"] is True


def test_core_bench_reports_figures(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # `lockstep bench` works from any directory, not only the checkout
    result = core.run(rows=2_000, regions=2, reps=1)
    assert result["rows"] == 4_000
    assert result["ratio_pipeline_to_reference"] > 0 and result["peak_rss_mib"] > 0
    assert all(FIGURE_KEYS <= set(f) for f in result["figures"])


def test_reconcile_bench_diff_is_exact_beside_duckdb() -> None:
    result = reconcile.run(rows=5_000, regions=3, parity_rows=20_000, scale=[10_000], reps=1)
    figs = {f["name"]: f for f in result["figures"]}
    assert all(FIGURE_KEYS <= set(f) for f in figs.values())
    diff = next(f for n, f in figs.items() if n.startswith("diff, "))
    duck = next(f for n, f in figs.items() if n.startswith("DuckDB full outer join"))
    assert diff["exact"] and duck["exact"]
    assert result["scale"][0]["exact"]


def test_integrity_bench_reports_the_verification_cost() -> None:
    from pipelines.bench import integrity

    result = integrity.run(rows=2_000, regions=1, reps=1)
    assert result["rows"] == 2_000 and result["files"] == 1 and result["bytes"] > 0
    assert all(FIGURE_KEYS <= set(f) for f in result["figures"])
    cost = result["figures"][0]
    assert cost["name"].startswith("verification cost") and cost["goal"] == "<= 0.05"


def test_bench_names_an_unknown_area_before_running_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`lockstep bench --only nope` is one error naming the area and the valid ones (exit 2,
    --json included), from any directory; it never silently runs nothing."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    cli = [str(Path(sys.executable).parent / "lockstep"), "bench", "--only", "core", "--only", "nope", "--json"]
    res = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    err = json.loads(res.stdout)["error"]
    assert "'nope'" in err["message"] and "integrity" in err["message"]
    assert "Traceback" not in res.stderr
    # a usage error with --json is a JSON document too (click's own message, exit 2)
    res = subprocess.run([*cli[:2], "--bogus", "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "--bogus" in json.loads(res.stdout)["error"]["message"], res.stdout + res.stderr
