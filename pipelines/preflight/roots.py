"""Preflight of where a run writes: the regions asked for are the spec's, every storage root is
usable (no URL syntax in a local path, writable: a probe file is created and removed)."""

from __future__ import annotations

import uuid
from pathlib import Path

from pipelines.errors import (
    SpecError,
    StorageError,
)
from pipelines.preflight.common import spec_where
from pipelines.spec import PipelineSpec
from pipelines.spec.settings import settings

#: characters a local root may not hold: Delta's object store reads them as URL syntax
UNSAFE_ROOT_CHARS = ("#", "?")


def check_regions(spec: PipelineSpec, regions: list[str] | None) -> list[str]:
    """The regions to run: ``regions`` when every one is the spec's, else a SpecError."""
    if regions is None:
        return list(spec.regions)
    unknown = [r for r in regions if r not in spec.regions]
    if unknown:
        raise SpecError(
            f"{spec_where(spec)}: regions: unknown region(s) {', '.join(repr(r) for r in unknown)}; "
            f"the spec's regions: {', '.join(spec.regions)}", file=spec_where(spec), field="regions")
    return list(regions)


def check_root_path(root: str, field: str = "storage.root", where: str = "") -> None:
    """A local root must not contain URL syntax (``#``, ``?``): Delta would write its files
    under one path and read them back from another."""
    if "://" in root:
        return
    bad = [c for c in UNSAFE_ROOT_CHARS if c in root]
    if bad:
        raise SpecError(
            f"{where + ': ' if where else ''}{field}: a local storage root may not contain "
            f"{' or '.join(repr(c) for c in bad)} (got {root!r}); choose another folder",
            file=where, field=field)


def _probe(root: str, where: str, field: str) -> None:
    path = Path(root).expanduser()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise StorageError(f"{where}: {field}: {existing} is a file, not a folder", retryable=False)
    probe = existing / f".lockstep-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise StorageError(f"{where}: {field}: storage root {path} is not writable ({exc.strerror})",
                           retryable=False) from None


def check_roots(spec: PipelineSpec, root: str | None = None, regions: list[str] | None = None) -> None:
    """Every root the run writes to is safe and (when local) writable: the roots of
    ``regions`` (default: every region's) and the control root. A control-plane step
    (``regions=[]``) looks at the control root alone: a region's storage is never its concern."""
    where = spec_where(spec)
    base = spec.root(root)
    field = "--root" if root else ("LOCKSTEP_ROOT" if settings().root else "storage.root")
    regions = list(spec.regions) if regions is None else regions
    control = getattr(spec.storage, "control_root", None)
    roots = {base.replace("{region}", r) for r in regions} if "{region}" in base else ({base} if regions else set())
    if isinstance(control, str):
        roots.add(control)
    elif "{region}" not in base:
        roots.add(base)  # the control root is the root
    for r in sorted(roots):
        check_root_path(r, field, where)
        if "://" not in r:
            _probe(r, where, field)


