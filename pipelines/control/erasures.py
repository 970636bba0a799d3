"""The erasure log: ``<control_root>/<pipeline>/_lockstep/erasures``.

``lockstep erase`` appends one ``erase`` row per region (who, why, the approvals, per table
the rows deleted and the Delta versions before and after its rewrite), then one
``recertify`` row (the affected intervals' new decisions); ``lockstep maintain`` appends one
``removal`` row per region once the older files holding the rows are deleted. The subject's
values never enter the control plane: rows carry their digest (:func:`values_digest`).

:func:`erased_versions` tells maintenance which table versions may no longer be kept (every
version older than an erasure's rewrite of that table), and :func:`erasure_of` tells a
reader which erasure removed a version.

Example::

    erasure_events(spec)[-1]["event"]         # 'removal'
    erased_versions(spec)                      # {table uri: (first clean version, erasure id)}
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pipelines.control.tables import ERASURES_TABLE
from pipelines.spec import PipelineSpec

ERASURES = ERASURES_TABLE.name


def values_digest(column: str, values: Iterable[Any], key: bytes) -> str:
    """What binds an erasure to its subject without recording it: a keyed hash (HMAC-SHA256
    under the deployment's hash key, :func:`pipelines.privacy.hash_key`) of the column and the
    sorted values. Keyed, because card ids are few enough to enumerate: an unkeyed hash of
    one would give the erased value back to anyone who reads the log."""
    body = json.dumps([column, sorted(str(v) for v in values)])
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def record_erasure_event(spec: PipelineSpec, *, root: str | None = None, **fields: Any) -> int:
    """Append one event as exactly the commit its ``log_version`` names; returns that version."""
    now = datetime.now(UTC)

    def row(v: int) -> dict[str, Any]:
        return {"pipeline": spec.name, "at": now, "log_version": v, "region": "*", "approvers": "[]",
                "tables": "{}", "intervals": "{}", "request_id": None, **fields}

    return ERASURES_TABLE.append_in_order(spec.lockstep_uri(ERASURES, root), row, spec.control_options())


def erasure_events(spec: PipelineSpec, *, root: str | None = None) -> list[dict[str, Any]]:
    """Every event of the erasure log, oldest first (JSON columns decoded)."""
    return _events(spec.lockstep_uri(ERASURES, root), spec.control_options())


def _events(uri: str, opts: dict[str, str] | None) -> list[dict[str, Any]]:
    dt = ERASURES_TABLE.open(uri, opts)
    rows = ERASURES_TABLE.scan(dt, opts).collect().sort("log_version").iter_rows(named=True)
    out = []
    for r in rows:
        r.update(approvers=json.loads(r["approvers"] or "[]"), tables=json.loads(r["tables"] or "{}"),
                 intervals=json.loads(r["intervals"] or "{}"))
        out.append(r)
    return out


def erased_versions(spec: PipelineSpec, *, root: str | None = None,
                    events: list[dict[str, Any]] | None = None) -> dict[str, tuple[int, str]]:
    """Table URI -> (the first version without the erased rows, the erasure id): every older
    version holds rows an erasure deleted, so nothing may keep it (the newest erasure wins)."""
    out: dict[str, tuple[int, str]] = {}
    for e in events if events is not None else erasure_events(spec, root=root):
        if e["event"] != "erase":
            continue
        for t in e["tables"].values():
            if t.get("rows") and t.get("version_after") is not None:
                prior = out.get(t["uri"])
                if prior is None or t["version_after"] > prior[0]:
                    out[t["uri"]] = (int(t["version_after"]), e["erasure_id"])
    return out


def erasure_of(control_root: str, pipeline: str, uri: str, version: int,
               storage_options: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The ``erase`` event whose rewrite made ``version`` of the table at ``uri`` hold erased
    rows (the oldest such erasure), or None."""
    for e in _events(ERASURES_TABLE.uri(control_root, pipeline), storage_options):
        if e["event"] != "erase":
            continue
        for t in e["tables"].values():
            if t.get("uri") == uri and t.get("rows") and t.get("version_after") is not None \
                    and version < int(t["version_after"]):
                return e
    return None
