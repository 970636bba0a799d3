"""Schema parity: every region's copy of a table has one schema (names, types, nullability)
and every features table one feature-definition version.

Schemas come from each table's profile: the region read them from its Delta log at the
version it wrote. The most common schema
is the consensus; a region that differs is told which columns are missing, extra or retyped.
Features tables with a ``feature_version`` column must hold exactly the spec's version.
"""

from __future__ import annotations

from collections import Counter

from pipelines.control.results import CheckResult
from pipelines.reconcile.context import Context
from pipelines.spec import SchemaCheck

Fields = tuple[tuple[str, str, bool], ...]


def _describe(mine: Fields, consensus: Fields) -> list[str]:
    a = {n: (t, nl) for n, t, nl in mine}
    b = {n: (t, nl) for n, t, nl in consensus}
    out = [f"missing column {n}" for n in b if n not in a]
    out += [f"extra column {n} ({a[n][0]})" for n in a if n not in b]
    for n in a.keys() & b.keys():
        if a[n][0] != b[n][0]:
            out.append(f"{n}: type {a[n][0]} (others {b[n][0]})")
        elif a[n][1] != b[n][1]:
            out.append(f"{n}: nullable={a[n][1]} (others {b[n][1]})")
    return out


def check_schema(ctx: Context, check: SchemaCheck) -> list[CheckResult]:
    spec = ctx.spec
    results: list[CheckResult] = []
    for table in spec.tables:
        schemas: dict[str, Fields] = {}
        profiles = {}
        for region in spec.regions:
            p = ctx.profile(region, table)
            if p is not None:
                profiles[region] = p
                schemas[region] = tuple((str(n), str(t), bool(nl)) for n, t, nl in p.schema)
        if not schemas:
            continue
        consensus, _ = Counter(schemas.values()).most_common(1)[0]
        fs = spec.feature_set_for(table.name)
        for region, fields in schemas.items():
            problems = _describe(fields, consensus) if fields != consensus else []
            if fs is not None and any(n == "feature_version" for n, _, _ in fields):
                versions = profiles[region].feature_versions
                if versions and versions != [fs.version]:
                    problems.append(f"feature_version {versions} (spec: {fs.version!r})")
            results.append(CheckResult(
                stage="reconcile", check_id=f"schema.{table.name}", check_type="schema", region=region,
                table=table.name, policy=check.policy, success=not problems,
                observed=[list(f) for f in fields] if problems else len(fields),
                threshold=[list(f) for f in consensus] if problems else len(consensus),
                message=f"{region}/{table.path}: " + ("; ".join(problems) if problems else "schema matches"),
                details={"problems": problems},
            ))
    return results
