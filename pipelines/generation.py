"""Generations: one interval's snapshot across all regions, ``{region/layer/table: Delta version}``.

A generation is what the gate judges and what a certification names. It is a plain value:
the gate assembles it from the evidence store (the newest version of each region's table for
the interval that a region published evidence about), never from the regions' tables, so a
certification refers to exactly the versions its evidence describes, whatever writers commit
meanwhile.

Example::

    gen = Generation("2026-01-01", {"eu-west/raw/transactions": 3})
    gen.version("eu-west", "raw", "transactions")   # 3
    gen.id                                          # '2026-01-01.<10 hex digits>'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


def member_key(region: str, layer: str, table: str) -> str:
    """The key of one (region, layer, table) in a generation."""
    return f"{region}/{layer}/{table}"


@dataclass(frozen=True)
class Generation:
    """The Delta version of every (region, layer, table) of one interval."""

    interval: str
    members: dict[str, int]

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.members, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.interval}.{digest}"

    def version(self, region: str, layer: str, table: str) -> int | None:
        return self.members.get(member_key(region, layer, table))


def generation_of(results: list[Any]) -> Generation | None:
    """The generation a list of reconcile results judged (from ``generation.snapshot``)."""
    for r in results:
        if r.check_id == "generation.snapshot" and r.details.get("generation") is not None:
            return Generation(r.details.get("interval") or "", {k: int(v) for k, v in r.details["generation"].items()})
    return None
