"""card_spend: an interval certifies end to end, and the DAG files parse in a real DagBag.

Run with ``pytest tests`` from the project folder.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import Interval, load_spec, read_certified, run_interval

PROJECT = Path(__file__).resolve().parent.parent
SPEC = PROJECT / "card_spend.yaml"


def test_an_interval_certifies(tmp_path: Path) -> None:
    spec = load_spec(SPEC)
    root = str(tmp_path / "lake")
    result = run_interval(spec, Interval.for_date(spec.start_date), root=root)
    assert result.decision is not None and result.decision.certified, result.summary()
    for region in spec.regions:
        assert read_certified(spec, "card_daily", region, root=root).collect().height > 0


def test_dag_files_parse() -> None:
    from airflow.dag_processing.dagbag import DagBag  # noqa: TID251

    bag = DagBag(str(PROJECT / "dags"))
    assert bag.import_errors == {}
    assert {"card_spend", "card_spend_scoring"} <= set(bag.dag_ids)
    for dag in bag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
