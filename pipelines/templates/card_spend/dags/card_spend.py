"""card_spend: the Airflow DAG of the Lockstep pipeline in ../card_spend.yaml.

One mapped task group per region (ingest, validate_inputs, transform, validate), then
reconcile and gate; the gate updates the Asset lockstep://card_spend/certified only when it
certifies an interval.
"""

from pathlib import Path

from pipelines.airflow import build_dag

dag = build_dag(Path(__file__).resolve().parent.parent / "card_spend.yaml")
