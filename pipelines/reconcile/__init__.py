"""Cross-region reconciliation (see the reconciliation issue).

``run_checks(spec, interval, root=None, run_id="") -> list[CheckResult]`` is the runner's
entry point; until the checks are wired in it runs none.
"""
