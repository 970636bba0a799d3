"""Personal values in Lockstep's own outputs: shown only as keyed hashes.

A table's spec classifies columns (``classification: {card_id: [personal, identifier]}``).
Wherever Lockstep writes a value derived from rows into its own outputs - check results'
observed and unexpected values, Data Docs, evidence's keyed digests, parity samples, and
through them ``explain``, the view, alerts, lineage facets and log lines - a value of a
personal column is replaced by its keyed hash, ``hmac:<16 hex>`` (the first 64 bits of
HMAC-SHA256 of the value's text under the deployment's secret), or left out.

The same value always hashes the same under one key, so a hash still says "the same card
failed in two checks" or "this key differs between regions", and an operator holding the key
can find the row (``lockstep`` never needs to reverse one). Card ids are few enough to
enumerate: the key, not the hash function, is what keeps them private, so it never enters
the control plane's tables.

The key (:func:`hash_key`) is ``LOCKSTEP_HASH_KEY`` (``settings().hash_key``). Unset, a
pipeline whose control root is a local folder (the embedded quickstart, tests, the demo)
creates a random one once at ``<control root>/.lockstep-hash-key`` (mode 0600, beside
``<pipeline>/_lockstep``, never inside it) and every process on that root reads it; a control
root in an object store (a deployment) has no such place: an unset key is a
:class:`~pipelines.errors.SpecError` naming the variable, raised by preflight before anything
is written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import SpecError, StorageError
from pipelines.spec import PipelineSpec
from pipelines.spec.settings import settings

PREFIX = "hmac:"
KEY_FILE = ".lockstep-hash-key"
#: result fields of a GX-format validation result that carry row values
VALUE_FIELDS = ("partial_unexpected_list", "unexpected_list", "partial_unexpected_counts",
                "partial_unexpected_index_list", "unexpected_index_list", "unexpected_rows", "details")
#: expectation types whose observed value is an aggregate no person can be read from (a count,
#: a share, a length, a moment): kept; any other observed value of a personal column is hashed
AGGREGATES = ("count", "proportion", "length", "mean", "stdev", "sum", "row_count")


def personal_columns(spec: PipelineSpec, table: str) -> frozenset[str]:
    """The personal columns of ``table`` (a name or a ``layer/name`` path; a quarantine
    table's are its table's)."""
    name = table.rsplit("/", 1)[-1]
    return next((t.personal for t in spec.tables if t.name == name), frozenset())


def has_personal(spec: PipelineSpec) -> bool:
    return any(t.personal for t in spec.tables)


def _local(control_root: str) -> Path | None:
    if control_root.startswith("file://"):
        return Path(control_root.removeprefix("file://"))
    return None if "://" in control_root else Path(control_root)


def require_key(spec: PipelineSpec, root: str | None = None) -> None:
    """Preflight: a pipeline with personal columns whose control root is not a local folder
    needs ``LOCKSTEP_HASH_KEY``."""
    if not has_personal(spec) or settings().hash_key is not None:
        return
    control = spec.control_root(root)
    if _local(control) is None:
        cols = "; ".join(f"{t.name}: {', '.join(sorted(t.personal))}" for t in spec.tables if t.personal)
        raise SpecError(
            f"{spec.name}: LOCKSTEP_HASH_KEY is unset; personal columns ({cols}) are shown in Lockstep's outputs "
            f"only as keyed hashes, and a control root in an object store ({control}) needs the deployment's key "
            "(the same on every worker)", field="LOCKSTEP_HASH_KEY")


def hash_key(spec: PipelineSpec, root: str | None = None) -> bytes:
    """The deployment's hash key (see the module's docs)."""
    secret = settings().hash_key
    if secret is not None:
        return secret.get_secret_value().encode()
    require_key(spec, root)
    folder = _local(spec.control_root(root))
    if folder is None:  # no personal column, yet a hash asked for: still never a made-up key
        raise SpecError(f"{spec.name}: LOCKSTEP_HASH_KEY is unset", field="LOCKSTEP_HASH_KEY")
    path = folder / KEY_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # first on this root: written aside, then linked in (one wins, never half-written)
            tmp = folder / f"{KEY_FILE}.{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_text().strip()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read or create the hash key: {exc.strerror or exc}", path=str(path)) from None
    if not key:
        raise StorageError(f"{path}: the hash key file is empty; remove it or set LOCKSTEP_HASH_KEY", path=str(path),
                           retryable=False)
    return key.encode()


class Masker:
    """Hashes one spec's personal values; the key is read on first use only (a run that shows
    no personal value never needs one)."""

    def __init__(self, spec: PipelineSpec, root: str | None = None) -> None:
        self.spec, self.root = spec, root
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = hash_key(self.spec, self.root)
        return self._key

    def value(self, v: Any) -> Any:
        """``hmac:<16 hex>`` of a value's text (None stays None; a hash is not hashed again)."""
        if v is None or (isinstance(v, str) and v.startswith(PREFIX)):
            return v
        return PREFIX + hmac.new(self.key, str(v).encode(), hashlib.sha256).hexdigest()[:16]

    def series(self, s: pl.Series) -> pl.Series:
        return pl.Series(s.name, [self.value(v) for v in s.to_list()], dtype=pl.String)

    def frame(self, df: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
        """``df`` with its ``columns`` (those it has) hashed."""
        cols = [c for c in columns if c in df.columns]
        return df.with_columns([self.series(df[c]) for c in cols]) if cols and df.height else (
            df.with_columns([pl.col(c).cast(pl.String) for c in cols]) if cols else df)

    def tree(self, obj: Any, columns: frozenset[str], *, everything: bool = False) -> Any:
        """A copy of a JSON-like value in which a value under a key naming a personal column
        (or, with ``everything``, every scalar) is hashed."""
        if isinstance(obj, dict):
            return {k: self.tree(v, columns, everything=everything or k in columns) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.tree(v, columns, everything=everything) for v in obj]
        if everything and not isinstance(obj, bool):
            return self.value(obj)
        return obj

    def result(self, expectation_type: str, kwargs: dict[str, Any], result: dict[str, Any],
               columns: frozenset[str]) -> dict[str, Any]:
        """A GX-format validation result as an output may show it: for an expectation on a
        personal column, its unexpected values and any non-aggregate observed value hashed
        (the counts kept); other results keep their values but any personal column an
        unexpected row or index names is hashed."""
        named = {kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"), *(kwargs.get("column_list") or [])}
        on_personal = bool(named & columns)
        res = result.get("result")
        if not isinstance(res, dict):
            return result
        shown = dict(res)
        for f in VALUE_FIELDS:
            if f in shown and f == "partial_unexpected_counts" and on_personal:
                shown[f] = [dict(c, value=self.value(c.get("value"))) if isinstance(c, dict) else c for c in shown[f]]
            elif f in shown:
                shown[f] = self.tree(shown[f], columns, everything=on_personal)
        obs = shown.get("observed_value")
        if on_personal and obs is not None and not any(a in expectation_type for a in AGGREGATES):
            shown["observed_value"] = self.tree(obs, columns, everything=True)
        return {**result, "result": shown}
