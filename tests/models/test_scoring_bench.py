"""The scoring bench runs end to end on tiny data and reports its figure (the figures come from
`lockstep bench --only scoring`, not from here)."""

from __future__ import annotations

from pipelines.bench import AREAS, scoring


def test_scoring_bench_reports_the_ratio_through_the_release() -> None:
    assert "scoring" in AREAS
    result = scoring.run(rows=300, regions=2, reps=1)
    assert result["rows"] > 0 and result["release"]
    figure = result["figures"][0]
    decision = result["figures"][1]
    assert "promotion decision" in decision["name"] and decision["ratio"] > 0 and decision["goal"] is None
    assert {"name", "value", "unit", "reference", "ratio", "goal", "met"} <= set(figure)
    assert figure["goal"] == "<= 1.3x" and figure["ratio"] > 0
