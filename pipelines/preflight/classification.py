"""Preflight of the spec's classification: every classified column is one its table has (where
the table's columns are known), a feature table declares personal every column it carries
from a personal column of its inputs, and a deployment that shows personal values as keyed
hashes has its key.

The rule for "carries from" is the simple, sound one a reader can check in the spec: an
output column with the name of a personal column of one of the feature set's inputs (a
transform that copies ``card_id`` keeps its name). A transform that renames a personal column
is not seen: declare the renamed column yourself.
"""

from __future__ import annotations

import polars as pl

from pipelines.errors import SpecError
from pipelines.preflight.common import spec_where
from pipelines.privacy import require_key
from pipelines.spec import PipelineSpec


def check_classification(spec: PipelineSpec, schemas: dict[str, pl.Schema], root: str | None = None) -> None:
    """Raise one :class:`SpecError` naming the table and the column at fault."""
    where = spec_where(spec)
    for i, t in enumerate(spec.tables):
        schema = schemas.get(t.name)
        unknown = sorted(set(t.classification) - set(schema.names())) if schema is not None else []
        if unknown:
            raise SpecError(f"{where}: tables[{i}] ({t.name}).classification: column {unknown[0]!r} is not a column "
                            f"of {t.name} (its columns: {', '.join(schema.names())})",  # type: ignore[union-attr]
                            file=where, field=f"tables[{i}].classification.{unknown[0]}", table=t.name, column=unknown[0])
    for fs in spec.features:
        out = spec.table(fs.output)
        schema = schemas.get(out.name)
        if schema is None:
            continue  # the transform's columns are unknown until its inputs land: the run checks then
        i = spec.tables.index(out)
        for name in fs.inputs:
            copied = sorted((spec.table(name).personal & set(schema.names())) - out.personal)
            if copied:
                col = copied[0]
                raise SpecError(
                    f"{where}: tables[{i}] ({out.name}): column {col!r} carries the personal column {name}.{col} "
                    f"of feature set {fs.name!r}'s input; classify it personal too "
                    f"(classification: {{{col}: [personal]}}) or leave it out of the output",
                    file=where, field=f"tables[{i}].classification.{col}", table=out.name, column=col)
    require_key(spec, root)
