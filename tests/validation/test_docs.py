"""Data Docs through the runner: the site Lockstep builds, region by region, is the one GX's own
builder makes from every stored result at once (GX itself is the oracle)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipelines.runner import run_interval
from pipelines.spec import Interval
from tests.validation.test_policies import D, fault, spec_with


def _site(base: Any) -> dict[str, str]:
    """A site's files, with what differs between any two builds (times, ids) normalised."""
    import itertools
    import re
    from pathlib import Path

    def norm(text: str) -> str:
        text = re.sub(r"\d{8}T\d{6}\.\d{6}Z", "STAMP", text)
        text = re.sub(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?", "TIME", text)
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text)
        # GX's logo URL carries the context's id (a tracking parameter): Lockstep's in-memory
        # context has none, and its pages need none
        text = re.sub(r"&dataContextId=UUID", "", text)
        return re.sub(r"_run_time_sort.: [0-9.]+", "SORT", text)

    def stamp(row: str) -> str:
        found = re.search(r"'_run_time_sort': ([0-9.]+)", row)
        return found.group(1) if found else ""

    def ties_sorted(text: str) -> str:
        """The index's rows in a fixed order among rows of the same run time, their order
        otherwise kept: GX lists a run's results in the order its store lists them, and a file
        store lists them in the filesystem's directory order (ext4 and tmpfs differ)."""
        row = "{'validation_success'"
        out = []
        for line in text.split("\n"):
            head, sep, rest = line.partition(f"data: [{row}")
            if sep:
                body, _, tail = rest.rpartition("}]")
                rows = [row + r + "}" for r in body.split(f"}}, {row}")]
                ordered = (r for _, tied in itertools.groupby(rows, key=stamp) for r in sorted(tied))
                line = head + "data: [" + ", ".join(ordered) + "]" + tail
            out.append(line)
        return "\n".join(out)

    out = {}
    for f in Path(base).rglob("*"):
        if f.is_file() and f.relative_to(base).parts[0] not in ("_results", D):
            data = f.read_bytes()
            key = norm(f.relative_to(base).as_posix())
            if f.suffix in (".html", ".css", ".js", ".json"):
                text = data.decode()
                out[key] = norm(ties_sorted(text) if f.name == "index.html" else text)
            else:
                out[key] = data.hex()
    return out


def test_the_site_built_region_by_region_is_gx_full_build(root: str, tmp_path: Any) -> None:
    """Each region's validation builds the site (through GX's page views with their compiled
    templates kept for the process): it is, file for file, the site GX's default builder makes
    from every stored result at once."""
    import json
    import shutil
    from pathlib import Path

    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from pipelines.validation.gx import import_gx

    spec = spec_with([fault("duplicates")], regions=3, rows=300)  # a failing page among passing ones
    run_interval(spec, Interval.for_date(D), root=root)
    for n, region in enumerate(spec.regions):  # each region's site, under its prefix, from its own results
        docs = Path(root, spec.name, "_lockstep", "regions", region, "data_docs")
        # the oracle: GX's own context, its default site, every stored result loaded through its schema
        context = import_gx().get_context(mode="file", project_root_dir=tmp_path / f"oracle-{n}")
        stored = sorted((docs / "_results").rglob("*.json"))
        assert len(stored) == 4  # transactions, merchant_risk, card_ and merchant_features
        for path in stored:
            suite, run_name, stamp, batch = path.relative_to(docs / "_results").with_suffix("").parts
            run_time = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
            key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite),
                                             run_id=RunIdentifier(run_name=run_name, run_time=run_time),
                                             batch_identifier=batch)
            context.validation_results_store.set(
                key, expectationSuiteValidationResultSchema.load(json.loads(path.read_text())))
        context.build_data_docs()
        full = tmp_path / f"oracle-{n}" / "gx" / "uncommitted" / "data_docs" / "local_site"
        built, oracle = _site(docs), _site(full)
        assert sorted(built) == sorted(oracle)
        assert [p for p in built if built[p] != oracle[p]] == []
        shutil.rmtree(full)
