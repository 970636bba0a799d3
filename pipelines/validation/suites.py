"""Expectation suites as files: ``expectations/<table>.json`` in GX 1.x's own suite JSON.

A suite is loaded and checked before any data is read: the file must be valid JSON of GX's
shape, every expectation type must be one GX knows, its kwargs must pass GX's own
expectation model and the rules GX applies only when it runs (see
:mod:`pipelines.validation.arguments`: unknown kwargs, ``mostly``, bounds, empty value sets,
regexes), every column it names must exist in the table, and its Lockstep policy (``meta.lockstep.policy``: ``warn``, ``quarantine`` or
``block``, default ``block``) must fit it - ``quarantine`` only on row-level (column map)
expectations. Each problem is one :class:`~pipelines.errors.ValidationStepError` naming the
file and the expectation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import ValidationStepError
from pipelines.spec import PipelineSpec, TableSpec
from pipelines.validation.arguments import check_arguments
from pipelines.validation.gx import gx_expectation_types

POLICIES = ("warn", "quarantine", "block")

#: Row-level expectations: each row passes or fails, so failing rows can be quarantined.
ROW_LEVEL = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list",
    "expect_column_values_to_not_match_regex_list",
    "expect_column_value_lengths_to_be_between",
}

@dataclass(frozen=True)
class Expectation:
    """One expectation of a suite, with its position and Lockstep policy."""

    index: int
    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    policy: str

    @property
    def check_id(self) -> str:
        col = self.kwargs.get("column") or ",".join(self.kwargs.get("column_list", []))
        return f"{self.type.removeprefix('expect_')}{f'[{col}]' if col else ''}#{self.index}"

    @property
    def row_level(self) -> bool:
        return self.type in ROW_LEVEL

    def columns(self) -> list[str]:
        cols = [self.kwargs["column"]] if "column" in self.kwargs else []
        return cols + list(self.kwargs.get("column_list", []))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": self.kwargs, "meta": self.meta}


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    expectations: list[Expectation] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    parameters: dict[str, Any] = field(default_factory=dict)  # the $PARAMETER values it was loaded with

    @property
    def sha(self) -> str:
        """The suite as it runs: its file and the parameter values it refers to."""
        text = json.dumps([self.raw, self.parameters], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _known_types() -> set[str]:
    """Every expectation type GX 1.x ships (read from its registry, imported on demand)."""
    return gx_expectation_types()


PARAMETER = "$PARAMETER"


def suite_parameters(spec: PipelineSpec, table: TableSpec) -> dict[str, Any]:
    """What a suite may refer to with GX's ``{"$PARAMETER": name}``: for a table a feature set
    writes, ``feature_version`` (its version, a string) and ``feature_versions`` (a list of
    it, for ``value_set``), so a version bump needs no suite edit."""
    fs = next((f for f in spec.features if f.output == table.name), None)
    return {} if fs is None else {"feature_version": fs.version, "feature_versions": [fs.version]}


def _resolve(path: Path, i: int, etype: str, kwargs: dict[str, Any], parameters: Mapping[str, Any]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """kwargs with every ``{"$PARAMETER": name}`` replaced by its value; the values used."""
    out, used = {}, {}
    for k, v in kwargs.items():
        if isinstance(v, dict) and PARAMETER in v:
            name = v[PARAMETER]
            if not isinstance(name, str) or name not in parameters:
                offered = ", ".join(sorted(parameters)) or "none for this table (feature_version and "\
                    "feature_versions exist for tables a feature set writes)"
                raise ValidationStepError(f"{path}: expectations[{i}] ({etype}): kwarg {k!r} refers to "
                                          f"$PARAMETER {name!r}, which Lockstep does not supply (it supplies: "
                                          f"{offered})", path=str(path))
            out[k] = used[name] = parameters[name]
        else:
            out[k] = v
    return out, used


def load_suite(path: Path, *, known_types: set[str] | None = None, parameters: Mapping[str, Any] | None = None
               ) -> Suite:
    """Read and check a suite file (no data is read); ``{"$PARAMETER": name}`` kwargs take
    their value from ``parameters`` (see :func:`suite_parameters`)."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ValidationStepError(f"{path}: cannot read suite ({exc.strerror})", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ValidationStepError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}", path=str(path)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ValidationStepError(f"{path}: not an ExpectationSuite (needs 'name' and a list 'expectations')",
                                  path=str(path))
    types = known_types if known_types is not None else _known_types()
    out = []
    used: dict[str, Any] = {}
    for i, e in enumerate(raw["expectations"]):
        where = f"{path}: expectations[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("type"), str) or not isinstance(e.get("kwargs", {}), dict):
            raise ValidationStepError(f"{where}: needs a 'type' string and a 'kwargs' mapping", path=str(path))
        etype = e["type"]
        if etype not in types:
            raise ValidationStepError(f"{where} ({etype}): unknown expectation type", path=str(path))
        meta = e.get("meta") or {}
        policy = (meta.get("lockstep") or {}).get("policy", "block")
        if policy not in POLICIES:
            raise ValidationStepError(f"{where} ({etype}): policy {policy!r} is not one of {POLICIES}", path=str(path))
        if policy == "quarantine" and etype not in ROW_LEVEL:
            raise ValidationStepError(
                f"{where} ({etype}): policy 'quarantine' needs a row-level (column map) expectation; "
                "use warn or block", path=str(path))
        kwargs, params = _resolve(path, i, etype, dict(e.get("kwargs") or {}), parameters or {})
        used.update(params)
        check_arguments(path, i, etype, kwargs)
        out.append(Expectation(i, etype, kwargs, meta, policy))
    return Suite(str(raw.get("name") or path.stem), path, out, raw, used)


def check_columns(suite: Suite, columns: list[str]) -> None:
    """Every column the suite names must exist in the table (checked before reading data)."""
    have = set(columns)
    for e in suite.expectations:
        if e.type in ("expect_column_to_exist", "expect_table_columns_to_match_set"):
            continue  # these report a missing column as their result
        missing = [c for c in e.columns() if c not in have]
        if missing:
            raise ValidationStepError(
                f"{suite.path}: expectations[{e.index}] ({e.type}): column(s) {missing} not in the table "
                f"(columns: {sorted(have)})", path=str(suite.path))


def suite_path(suites_dir: Path, name: str) -> Path:
    return suites_dir / f"{name}.json"


def validated_tables(spec: PipelineSpec) -> list[TableSpec]:
    """The tables the spec validates: every table but quarantine ones and those marked
    ``validated: false`` (none when validation is off)."""
    if not spec.validation.enabled:
        return []
    return [t for t in spec.tables if t.layer != "quarantine" and t.validated]


def current_suite(spec: PipelineSpec, table: TableSpec) -> Suite:
    """The suite ``table`` is validated under now. A validated table whose suite file is
    missing or does not load is an error naming the file: never "nothing to check"."""
    path = suite_path(spec.suites_dir(), table.suite_name)
    if not path.exists():
        raise ValidationStepError(
            f"{path}: the suite of {table.path} does not exist, so the table cannot be validated or certified; "
            f"restore the file (or mark the table `validated: false` in the spec)", path=str(path), missing=True)
    return load_suite(path, parameters=suite_parameters(spec, table))
