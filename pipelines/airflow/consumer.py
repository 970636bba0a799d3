"""Helpers for model DAGs that consume a pipeline's certified Asset."""

from __future__ import annotations

from typing import Any


def certified_generation(context: Any) -> str | None:
    """The generation id of the newest certified-asset event that triggered this run.

    ``None`` when the run was not asset-triggered (then consumers read the generation in
    force)."""
    events = context.get("triggering_asset_events") or {}
    newest: tuple[Any, str] | None = None
    for asset_events in events.values():
        for event in asset_events:
            extra = getattr(event, "extra", None) or {}
            gen = extra.get("generation_id")
            if gen and (newest is None or event.timestamp > newest[0]):
                newest = (event.timestamp, gen)
    return None if newest is None else newest[1]
