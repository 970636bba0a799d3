"""Region-scoped authority as the deployed spec declares it: 13 roles (12 region operators and
Admin) x 12 regions x every action, each allow and each deny; and the spec's governance
section names the field of every mistake."""

from __future__ import annotations

import pytest

from pipelines.errors import GovernanceError, SpecError
from pipelines.governance import Principal, allowed, authorize, visible_regions
from pipelines.spec import ACTIONS, load_spec, parse_spec
from tests.conftest import REPO, small_spec_data

DEPLOYED = load_spec(REPO / "docker" / "dags" / "fraud_features.yaml")
OPERATOR = {"read", "run", "override", "rollback", "approve"}


def test_the_deployed_role_region_action_matrix() -> None:
    gov = DEPLOYED.governance
    assert gov is not None and not gov.allow_local and gov.approvals == 2
    roles = sorted(gov.roles)
    assert len(roles) == 13 and len(DEPLOYED.regions) == 12
    checked = 0
    for role in roles:
        user = Principal(f"user-of-{role}", "airflow", frozenset({role}))
        for region in DEPLOYED.regions:
            for action in ACTIONS:
                expected = role == "Admin" or (role == f"{region}-operator" and action in OPERATOR)
                assert allowed(DEPLOYED, user, action, region) is expected, (role, region, action)
                checked += 1
        assert visible_regions(DEPLOYED, user) == (DEPLOYED.regions if role == "Admin" else [role[:-9]])
    assert checked == 13 * 12 * len(ACTIONS)
    # a decision affecting several regions needs the action in each; the refusal names the missing ones
    eu = Principal("ana", "airflow", frozenset({"eu-west-operator", "eu-central-operator"}))
    authorize(DEPLOYED, eu, "override", ["eu-west", "eu-central"])
    with pytest.raises(GovernanceError, match="may not override in us-east \\(of eu-west, us-east affected\\)"):
        authorize(DEPLOYED, eu, "override", ["eu-west", "us-east"])
    nobody = Principal("x", "airflow", frozenset({"Viewer"}))
    assert visible_regions(DEPLOYED, nobody) == []


@pytest.mark.parametrize(("governance", "field"), [
    ({"roles": {"op": {"regions": ["mars-1"], "actions": ["read"]}}}, "governance.roles.op.regions"),
    ({"roles": {"op": {"regions": "*", "actions": ["fly"]}}}, "governance.roles.op.actions[0]"),
    ({"roles": {"op": {"regions": "*", "actions": ["read", "read"]}}}, "governance.roles.op.actions"),
    ({"roles": {"op": {"regions": "*", "actions": []}}}, "governance.roles.op.actions"),
    ({"approvals": 0}, "governance.approvals"),
    ({"approval_expiry": "0s"}, "governance.approval_expiry"),
    ({"allow_local": "maybe"}, "governance.allow_local"),
    ({"approver": 2}, "governance.approver"),
])
def test_a_malformed_governance_section_names_the_field(governance: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SpecError) as err:
        parse_spec(small_spec_data(governance=governance), "spec.yaml")
    assert field in str(err.value), str(err.value)
