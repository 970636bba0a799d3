"""The benchmarks run end to end on tiny data and report their ratios (figures come from
`lockstep bench`, not from here)."""

from __future__ import annotations

from pipelines.bench import core


def test_core_bench_reports_ratios() -> None:
    result = core.run(rows=2_000, regions=2)
    assert result["rows"] == 4_000
    assert result["ratio_pipeline_to_reference"] > 0 and result["peak_rss_mib"] > 0
    assert result["ratio_peak_rss_all_regions_to_one_region"] > 0
