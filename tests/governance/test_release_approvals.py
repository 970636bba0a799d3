"""A model release under the two-person rule: the request is checked as the promotion would
be and bound to the model version's tags; it affects every region, so only holders of
``release`` (to request) and ``approve`` (to approve) in every region take part."""

from __future__ import annotations

import pytest

from pipelines.errors import GovernanceError
from pipelines.governance import Principal, approve, request_release, requests
from pipelines.models import release_in_force, releases, shadow_score, train
from pipelines.runner import run_interval
from pipelines.spec import parse_spec
from tests.conftest import REPO, small_spec_data
from tests.governance.conftest import ADMIN, D1, D2, governance, op

# two regions and enough rows for the model to see both classes
GOVERNANCE = governance()
GOVERNANCE["roles"].pop("eu-north-operator")
SPEC = parse_spec(small_spec_data(regions=2, rows=1000, governance=GOVERNANCE, models={"window": 1, "seed": 11, "promotion": {"window": 1, "max_auc_drop": 1.0}}),
                  "governed-models").with_path(REPO / "dags" / "fraud_features.yaml")
ANN, BEN = (Principal(n, "airflow", ADMIN.roles) for n in ("ann", "ben"))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("released") / "lake")
    assert run_interval(SPEC, D1, root=root).decision.certified  # type: ignore[union-attr]
    return root


def test_a_promotion_takes_effect_with_two_approvals_of_every_region(lake: str) -> None:
    trained = train(SPEC, until=D1.key, root=lake)
    for region in SPEC.regions:  # the promotion gate asks for shadow scores in every region
        shadow_score(SPEC, trained.version, D1.key, region, root=lake)
    with pytest.raises(GovernanceError, match="airflow:alice \\(eu-central-operator\\) may not release in eu-west\\b"):
        request_release(SPEC, op("alice"), kind="promote", version=trained.version, effective_from=D2.key,
                        reason="r", root=lake)
    with pytest.raises(GovernanceError, match="no release|version"):
        request_release(SPEC, ADMIN, kind="rollback", to="fraud_model-r9", effective_from=D2.key, reason="r",
                        root=lake)
    req = request_release(SPEC, ADMIN, kind="promote", version=trained.version, effective_from=D2.key,
                          reason="first model", root=lake)
    assert (req.action, req.generation_id, req.regions, req.state()) == ("release", trained.version, SPEC.regions,
                                                                         "pending")
    with pytest.raises(GovernanceError, match="cannot approve their own request"):
        approve(SPEC, ADMIN, req.request_id, reason="me", root=lake)
    with pytest.raises(GovernanceError, match="airflow:bob \\(eu-central-operator\\) may not approve in eu-west"):
        approve(SPEC, op("bob"), req.request_id, reason="not all mine", root=lake)
    _, none = approve(SPEC, ANN, req.request_id, reason="metrics fine", root=lake)
    assert none is None and releases(SPEC, root=lake) == []
    done, release = approve(SPEC, BEN, req.request_id, reason="ok", root=lake)
    assert release is not None and done.state() == "decided" and done.decision_id == release.release_id
    assert release.who == "airflow:root-admin" and release.model_version == trained.version
    assert release.approval == {"request": req.request_id, "requester": "airflow:root-admin",
                                "approvers": ["airflow:ann", "airflow:ben"], "digest": req.digest}
    assert release_in_force(SPEC, D2.key, root=lake).release_id == release.release_id  # type: ignore[union-attr]
    assert [r.state() for r in requests(SPEC, root=lake)] == ["decided"]
