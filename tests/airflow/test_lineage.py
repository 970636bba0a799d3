"""OpenLineage events of a real DAG run (``dag.test()``), written by OpenLineage's file
transport: Delta datasets per region in and out of every step, every check as a
``dataQualityAssertions`` facet.

The run happens in a subprocess: the provider decides at plugin import whether its listener
is on, so the process needs the OpenLineage configuration before Airflow loads plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.airflow.audit import FACET
from pipelines.airflow.lineage import AIRFLOW_ENV, assertion, dataset_name
from pipelines.control.results import CheckResult
from tests.conftest import small_spec_data

RUN = """
import sys
from datetime import UTC, datetime
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
assert bag.import_errors == {}, bag.import_errors
dr = bag.dags[sys.argv[2]].test(logical_date=datetime(2026, 1, 2, tzinfo=UTC))
print("STATE", dr.state)
"""


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """Migrate the test session's SQLite metadata database (once per module)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def run_with_lineage(tmp_path: Path, faults: list[dict[str, Any]], name: str) -> tuple[str, list[dict[str, Any]]]:
    """Run a 2-region pipeline through ``dag.test()`` with lineage on; (state, events)."""
    data = small_spec_data(regions=2, rows=200, name=name)
    data["storage"] = {"root": str(tmp_path / "lake")}
    data["sources"]["transactions"]["faults"] = faults
    data["airflow"]["retries"] = 0
    data["validation"]["suites_dir"] = str(Path(__file__).resolve().parents[2] / "expectations")
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{name}.py"
    dag_file.write_text(f"from pipelines.airflow import build_dag\n\ndag = build_dag({str(spec_path)!r})\n")
    events_file = tmp_path / "lineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}),
        **AIRFLOW_ENV,
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lockstep-test",
    }
    env.pop("LOCKSTEP_ROOT", None)
    proc = subprocess.run([sys.executable, "-c", RUN, str(dag_file), name], env=env, capture_output=True,
                          text=True, timeout=600)
    (tmp_path / "run.log").write_text(proc.stdout + proc.stderr)  # what the run logged: the leak scan reads it
    state = next((line.split()[1] for line in proc.stdout.splitlines() if line.startswith("STATE ")), None)
    assert state is not None, proc.stdout[-3000:] + proc.stderr[-5000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return state, events


def decided(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit events among them: one per decision (:mod:`pipelines.airflow.audit`)."""
    return [e for e in events if FACET in e["run"].get("facets", {})]


def completed(events: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The task's lineage events that ended it (its decision's audit event is not one)."""
    return [e for e in events if e["eventType"] in ("COMPLETE", "FAIL") and e["job"]["name"].endswith(f".{task}")
            and e not in decided(events)]


def names(datasets: list[dict[str, Any]]) -> set[str]:
    return {d["name"] for d in datasets}


@pytest.mark.slow
def test_dag_run_emits_delta_datasets_per_region_and_checks_as_assertions(airflow_db: None, tmp_path: Path) -> None:
    # duplicated transactions in eu-west: uniqueness fails (warn, quarantined) and the
    # quarantined share exceeds its cap (block): the gate blocks
    state, events = run_with_lineage(tmp_path, [{"kind": "duplicates", "regions": ["eu-west"], "magnitude": 5}],
                                     "ol_fraud")
    lake = tmp_path / "lake" / "ol_fraud"
    regions = ["eu-west", "eu-central"]
    assert {e["job"]["namespace"] for e in events if e not in decided(events)} == {"lockstep-test"}
    assert not [e for e in events if "extractionError" in e["run"].get("facets", {})]

    # ingest: one event per region, writing that region's raw and reference Delta tables
    ingest = completed(events, "ingest")
    assert len(ingest) == 2
    for region in regions:
        (ev,) = [e for e in ingest if any(f"/{region}/" in o["name"] for o in e["outputs"])]
        assert names(ev["outputs"]) == {str(lake / region / "raw" / "transactions"),
                                       str(lake / region / "reference" / "merchant_risk")}
        for out in ev["outputs"]:
            assert out["namespace"] == "file"
            assert out["facets"]["storage"]["storageLayer"] == "delta"
            assert int(out["facets"]["version"]["datasetVersion"]) >= 0
            assert out["outputFacets"]["outputStatistics"]["rowCount"] > 0
            assert {f["name"] for f in out["facets"]["schema"]["fields"]} >= {"ds"}
            (ident,) = out["facets"]["symlinks"]["identifiers"]
            assert ident["namespace"] == "lockstep://ol_fraud" and ident["name"].startswith(f"{region}.")

    # transform reads the region's raw tables and writes its features
    for ev in completed(events, "transform"):
        region = next(r for r in regions if any(f"/{r}/" in i["name"] for i in ev["inputs"]))
        assert str(lake / region / "raw" / "transactions") in names(ev["inputs"])
        assert {o["name"].rsplit("/", 2)[-2] for o in ev["outputs"]} == {"features"}

    # validate_inputs: every expectation of the region's raw tables as an assertion
    checks: dict[str, list[dict[str, Any]]] = {}
    for ev in completed(events, "validate_inputs"):
        for inp in ev["inputs"]:
            facet = inp.get("inputFacets", {}).get("dataQualityAssertions")
            if facet:
                checks[inp["name"]] = facet["assertions"]
    eu_tx = checks[str(lake / "eu-west" / "raw" / "transactions")]
    us_tx = checks[str(lake / "eu-central" / "raw" / "transactions")]
    assert {a["name"] for a in eu_tx} - {"transactions.quarantine_cap"} == {a["name"] for a in us_tx}
    assert all(a["success"] for a in us_tx)
    failed = {a["name"]: a for a in eu_tx if not a["success"]}
    assert all(a["params"]["region"] == "eu-west" and a["params"]["stage"] == "validation"
               for a in failed.values())
    unique = failed["transactions.column_values_to_be_unique[txn_id]#1"]
    assert (unique["column"], unique["assertion"], unique["severity"]) == (
        "txn_id", "expect_column_values_to_be_unique", "warn")
    assert unique["params"]["unexpected_count"] > 0
    assert failed["transactions.quarantine_cap"]["severity"] == "error"
    # the features' expectations, in the validate step
    feats = [i for e in completed(events, "validate") for i in e["inputs"]]
    assert {i["name"].rsplit("/", 1)[-1] for i in feats} == {"card_features", "merchant_features"}
    assert all(i["inputFacets"]["dataQualityAssertions"]["assertions"] for i in feats)

    # reconcile: the cross-region checks on every region's tables, at the versions judged
    (rec,) = completed(events, "reconcile")
    judged = {i["name"]: i for i in rec["inputs"]}
    assert str(lake / "eu-west" / "features" / "card_features") in judged
    assert str(lake / "eu-central" / "features" / "card_features") in judged
    assert all("version" in i["facets"] for i in judged.values())
    recon = [a for i in judged.values() for a in i.get("inputFacets", {}).get("dataQualityAssertions", {})
             .get("assertions", [])]
    assert recon and {a["params"]["stage"] for a in recon} == {"reconcile"}
    assert any(a["name"] == "transactions.quarantine_cap" and not a["success"] for a in
               judged[str(lake / "eu-west" / "raw" / "transactions")]["inputFacets"]["dataQualityAssertions"]["assertions"])
    assert names(rec["outputs"]) == {str(lake / "_lockstep" / "check_results")}

    # the gate blocked: a FAIL event that still names what it judged and the decision log
    assert state == "failed"
    (gate,) = completed(events, "gate")
    assert gate["eventType"] == "FAIL"
    assert names(gate["outputs"]) == {str(lake / "_lockstep" / "certifications")}
    assert len(gate["inputs"]) == len(judged)

    # the failed uniqueness check's transaction ids appear in no event, no log line, no control table
    from pipelines.spec import Interval, parse_spec
    from tests.leakscan import Personal, scan

    data = small_spec_data(regions=2, rows=200, name="ol_fraud")
    data["sources"]["transactions"]["faults"] = [{"kind": "duplicates", "regions": ["eu-west"], "magnitude": 5}]
    values = Personal.of_source(parse_spec(data, "ol_fraud"), [Interval.for_date(d) for d in ("2026-01-01", "2026-01-02")])
    task_logs = [f for f in (Path(os.environ["AIRFLOW_HOME"]) / "logs").rglob("*") if "ol_fraud" in str(f)]
    leaks = scan(values, control_root=tmp_path / "lake", files=[tmp_path / "lineage.jsonl", tmp_path / "run.log", *task_logs])
    assert not leaks, {place: sorted(v)[:3] for place, v in leaks.items()}


@pytest.mark.slow
def test_the_gate_exports_its_decision_when_it_decides(airflow_db: None, tmp_path: Path) -> None:
    """With a transport configured, the gate task sends its decision's audit event itself: no
    `lockstep audit` is needed, and the one that follows has nothing left to send."""
    from pipelines.certify import decisions
    from pipelines.spec import load_spec
    from tests.governance.test_audit import _export

    state, events = run_with_lineage(tmp_path, [], "ol_decided")
    assert state == "success"
    spec = load_spec(tmp_path / "ol_decided.yaml")
    [decision] = decisions(spec)
    assert decision.kind == "gate" and decision.certified
    [event] = decided(events)
    facet = event["run"]["facets"][FACET]
    assert (facet["log"], facet["kind"], facet["status"], facet["decision_id"], facet["generation"]) == \
        ("certifications", "gate", decision.status, decision.decision_id, decision.generation_id)
    assert (event["job"]["namespace"], event["job"]["name"]) == ("lockstep://ol_decided",
                                                                 "ol_decided.certifications.gate")
    assert _export(spec.path, str(tmp_path / "lake"), tmp_path / "later.jsonl")["exported"] == []
    assert not (tmp_path / "later.jsonl").exists() or not (tmp_path / "later.jsonl").read_text().strip()


def test_dataset_names_follow_openlineage_naming() -> None:
    assert dataset_name("/lake/p/eu-west/raw/t") == ("file", "/lake/p/eu-west/raw/t")
    assert dataset_name("file:///lake/p") == ("file", "/lake/p")
    assert dataset_name("s3://lake-eu/x/p/eu-west/raw/t") == ("s3://lake-eu", "x/p/eu-west/raw/t")
    assert dataset_name("gcs://b/p") == ("gs://b", "p")
    assert dataset_name("abfss://c@acct.dfs.core.windows.net/p/t") == ("abfss://c@acct.dfs.core.windows.net", "p/t")


def test_a_check_result_becomes_an_assertion() -> None:
    check = CheckResult(stage="reconcile", check_id="parity.merchant_risk", check_type="parity", region="*",
                        table="reference/merchant_risk", policy="block", success=False, observed={"differs": 3},
                        threshold=0, message="3 keys differ")
    a = assertion(check)
    assert (a.assertion, a.name, a.success, a.severity, a.column) == (
        "parity", "parity.merchant_risk", False, "error", None)
    assert (a.actual, a.expected, a.description) == ('{"differs": 3}', "0", "3 keys differ")
    multi = assertion(CheckResult(stage="validation", check_id="t.compound_columns_to_be_unique[a,b]#1",
                                  check_type="compound_columns_to_be_unique", region="eu-west", table="t",
                                  policy="warn", success=True))
    assert multi.column is None and multi.params["columns"] == ["a", "b"] and multi.severity == "warn"


def test_a_forked_emitter_names_the_datasets_and_says_why_versions_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider's default emits from a fork, where deltalake cannot run: the extractor
    does not try, and says so on the event instead of sending it silently bare."""
    from airflow.sdk import DAG, task

    from pipelines.airflow import build_dag, lineage

    data = small_spec_data(regions=2, rows=50, name="ol_fork")
    data["storage"] = {"root": str(tmp_path / "lake")}
    (tmp_path / "ol_fork.yaml").write_text(yaml.safe_dump(data))
    dag = build_dag(tmp_path / "ol_fork.yaml")
    monkeypatch.setattr(lineage, "_LOADED_IN", -1)  # as if this process were the fork
    got = lineage.LockstepExtractor(dag.task_dict["reconcile"]).extract_on_complete(None)
    assert got is not None
    (error,) = got.run_facets["extractionError"].errors
    assert "execute_in_thread" in error.errorMessage
    assert {d.name for d in got.inputs} >= {str(tmp_path / "lake" / "ol_fork" / r / "features" / "card_features")
                                            for r in ("eu-west", "eu-central")}
    assert [d.name for d in got.outputs] == [str(tmp_path / "lake" / "ol_fork" / "_lockstep" / "check_results")]

    # any other @task keeps the provider's Python extractor (its source code, no datasets)
    with DAG(dag_id="not_lockstep", schedule=None) as other_dag:
        @task
        def other() -> int:
            return 1

        other()
    plain = lineage.LockstepExtractor(other_dag.task_dict["other"]).extract()
    assert plain is not None and not plain.inputs and not plain.outputs
    assert "sourceCode" in plain.job_facets and "extractionError" not in plain.run_facets
