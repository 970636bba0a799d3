"""Region-scoped authority: which regions a decision affects, and whether a principal may act there.

The spec's ``governance.roles`` grant actions per region to auth-manager roles
(:class:`~pipelines.spec.GovernanceSpec`). A decision is allowed only when the principal holds
the action in *every* region it affects; a listing shows only the regions granted ``read``.
A spec without ``governance`` is ungoverned: everyone may do everything (the quickstart).

Example::

    authorize(spec, me, "override", affected_regions(spec, block))
    visible_regions(spec, me)      # ['eu-west']
"""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.control.decisions import Decision
from pipelines.errors import GovernanceError
from pipelines.governance.identity import Principal
from pipelines.spec import ACTIONS, PipelineSpec


def affected_regions(spec: PipelineSpec, decision: Decision, action: str) -> list[str]:
    """The regions a decision about ``decision`` affects: a rollback re-points every region; an
    override the regions whose checks blocked (every region when a reason is cross-region, ``*``)."""
    if action != "override":
        return list(spec.regions)
    named = {str(r.get("region") or "*") for r in decision.reasons}
    if not named or "*" in named or not named <= set(spec.regions):
        return list(spec.regions)
    return [r for r in spec.regions if r in named]


def allowed(spec: PipelineSpec, principal: Principal, action: str, region: str) -> bool:
    """May ``principal`` take ``action`` in ``region``?"""
    if action not in ACTIONS:
        raise GovernanceError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", status=422)
    gov = spec.governance
    return gov is None or gov.allows(principal.roles, action, region)


def authorize(spec: PipelineSpec, principal: Principal, action: str, regions: Iterable[str]) -> None:
    """Refuse (403) unless ``principal`` holds ``action`` in every one of ``regions``."""
    regions = list(regions)
    denied = [r for r in regions if not allowed(spec, principal, action, r)]
    if denied:
        roles = ", ".join(sorted(principal.roles)) or "no role"
        raise GovernanceError(
            f"{spec.name}: {principal.identity} ({roles}) may not {action} in {', '.join(denied)}"
            + (f" (of {', '.join(regions)} affected)" if len(denied) < len(regions) else "")
            + "; governance.roles grants it to: " + (", ".join(grantees(spec, action, denied)) or "nobody"),
            status=403, denied=denied)


def grantees(spec: PipelineSpec, action: str, regions: Iterable[str]) -> list[str]:
    """The roles holding ``action`` in every one of ``regions``."""
    gov = spec.governance
    if gov is None:
        return ["everyone (ungoverned)"]
    regions = list(regions)
    return sorted(n for n, g in gov.roles.items() if action in g.actions and all(g.covers(r) for r in regions))


def visible_regions(spec: PipelineSpec, principal: Principal, action: str = "read") -> list[str]:
    """The pipeline's regions ``principal`` is granted ``action`` in (a listing shows only these)."""
    return [r for r in spec.regions if allowed(spec, principal, action, r)]
