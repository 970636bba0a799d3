"""Validation: Great Expectations suites per region and table (see the validation issue).

``validate_region(spec, interval, region, root=None, run_id="") -> list[CheckResult]`` is the
runner's entry point; until suites are wired in it validates nothing and returns no results.
"""
