"""The model base and the field types every part of a spec shares.

Every spec model derives from :class:`_Model`: unknown fields are errors (a typo is never a
silently ignored setting) and models are frozen (a spec is a value, hashed and passed around).
``Region`` and ``Name`` are the id patterns of DESIGN.md's vocabulary; ``Layer``, ``Policy``
and ``CheckPolicy`` its closed sets of words.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

REGION_PATTERN = r"^[a-z][a-z0-9-]{1,31}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

Region = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Layer = Literal["raw", "features", "quarantine", "reference"]
Policy = Literal["warn", "quarantine", "block"]
CheckPolicy = Literal["warn", "block"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
