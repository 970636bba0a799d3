"""fraud_features: an interval certifies end to end, and the DAG files parse in a real DagBag.

Run with ``pytest tests`` from the project folder.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import Interval, load_spec, parse_spec, read_certified, run_interval

PROJECT = Path(__file__).resolve().parent.parent
SPEC = PROJECT / "fraud_features.yaml"


def test_an_interval_certifies(tmp_path: Path) -> None:
    spec = load_spec(SPEC)
    data = spec.model_dump(mode="json")  # a smaller day for a quick test: 300 rows per region
    data["sources"]["transactions"]["rows_per_region"] = 300
    spec = parse_spec(data, str(SPEC)).with_path(SPEC)
    root = str(tmp_path / "lake")
    result = run_interval(spec, Interval.for_date(spec.start_date), root=root)
    assert result.decision is not None and result.decision.certified, result.summary()
    for region in spec.regions:
        assert read_certified(spec, "card_features", region, root=root).collect().height > 0


def test_dag_files_parse() -> None:
    from airflow.dag_processing.dagbag import DagBag  # noqa: TID251

    bag = DagBag(str(PROJECT / "dags"))
    assert bag.import_errors == {}
    assert {"fraud_features", "fraud_features_release", "fraud_features_scoring"} <= set(bag.dag_ids)
    for dag in bag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
