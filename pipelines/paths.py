"""Where things live: the layout of table and bookkeeping URIs (no IO, no heavy imports).

``<root>/<pipeline>/<region>/<layer>/<table>`` for a region's tables,
``<root>/<pipeline>/_lockstep/<name>`` for the control plane's, and
``<root>/<pipeline>/_lockstep/regions/<region>/<name>`` for what a region publishes to the
control plane (its evidence prefix: the one prefix its key may write there); a local root
is made absolute, an object-store URI is joined with ``/``.
"""

from __future__ import annotations

from pathlib import Path

LOCKSTEP_DIR = "_lockstep"
#: under ``_lockstep``: one prefix per region, written by that region alone
REGIONS_DIR = "regions"


def join_uri(root: str, *parts: str) -> str:
    """Join a local path or an object-store URI with path parts."""
    if "://" in root:
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(root).expanduser().resolve().joinpath(*parts))


def table_uri(root: str, pipeline: str, region: str, layer: str, table: str) -> str:
    """``<root>/<pipeline>/<region>/<layer>/<table>`` (region ids are validated by the spec)."""
    return join_uri(root, pipeline, region, layer, table)


def lockstep_uri(root: str, pipeline: str, name: str) -> str:
    """A Lockstep bookkeeping table: ``<root>/<pipeline>/_lockstep/<name>``."""
    return join_uri(root, pipeline, LOCKSTEP_DIR, name)


def region_prefix(root: str, pipeline: str, region: str) -> str:
    """A region's prefix of the control plane: ``<root>/<pipeline>/_lockstep/regions/<region>``."""
    return join_uri(root, pipeline, LOCKSTEP_DIR, REGIONS_DIR, region)


def region_lockstep_uri(root: str, pipeline: str, region: str, name: str) -> str:
    """What a region publishes: ``<root>/<pipeline>/_lockstep/regions/<region>/<name>``."""
    return join_uri(region_prefix(root, pipeline, region), name)
