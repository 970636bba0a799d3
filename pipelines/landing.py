"""Event-driven runs: which intervals have landed, and one run per interval and delivery.

With ``airflow.trigger: landing`` a pipeline does not run on its cron schedule: a
notification (an Airflow asset event on ``lockstep://<pipeline>/landing``, posted by
whatever delivers the files) starts the ``<pipeline>_landing`` DAG, which asks
:func:`ready` which intervals have landed and starts one pipeline run per interval, under
the run id :attr:`Landed.run_id`. That id is derived from the interval and from what was
delivered for it (every region's file: path, size, modification time), so:

* the same notification repeated, 10 times or 10,000, names the same run ids; Airflow keeps
  one run per id, and the interval is processed and certified once;
* files delivered again for an interval (late rows) change its content key: that interval
  gets one new run, which re-versions the regions whose files changed and re-certifies that
  interval only (unchanged regions are skipped by the writes' fingerprints).

An interval has landed when it closed plus the pipeline's late allowance and every region's
file of every required file source is there. This module is core: no Airflow import.

Example::

    for landed in ready(spec, now=datetime.now(UTC), intervals=["2026-01-01T05"]):
        print(landed.interval.key, landed.run_id)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.errors import SourceError, SpecError
from pipelines.sources.files import file_path, stat_input
from pipelines.spec import FileSource, Interval, PipelineSpec

RUN_ID_PREFIX = "landing__"


@dataclass(frozen=True)
class Landed:
    """An interval whose files are all there, and the key of what was delivered for it."""

    interval: Interval
    content: str

    @property
    def run_id(self) -> str:
        """The pipeline run that processes this delivery (the same for every duplicate notification)."""
        return f"{RUN_ID_PREFIX}{self.interval.key}__{self.content[:16]}"


def content_key(spec: PipelineSpec, interval: Interval) -> str | None:
    """A hash of every region's delivered file for ``interval`` (path, size, modification
    time); None while a required file is missing. An unreadable file raises its SourceError."""
    h = hashlib.sha256(interval.key.encode())
    for name, src in sorted(spec.sources.items()):
        if not isinstance(src, FileSource):
            continue
        for region in spec.regions:
            path = file_path(src, region, interval)
            try:
                st = stat_input(path, required=True)
            except SourceError as exc:
                if not exc.retryable:  # a folder, an unreadable file, a link loop: one clear error
                    raise
                if not src.required:  # missing, or a link whose target is not there yet
                    continue
                return None
            assert st is not None
            h.update(f"\0{name}\0{region}\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def named_intervals(extras: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """The interval keys landing notifications name in their ``extra`` (``interval``: a key,
    or ``intervals``: a list of keys); a notification naming none names none."""
    out: list[str] = []
    for extra in extras:
        if not extra:
            continue
        named = extra.get("intervals", [])
        if "interval" in extra:
            named = [extra["interval"], *named]
        if isinstance(named, str) or not all(isinstance(k, str) for k in named):
            raise SpecError(f"landing notification extra {dict(extra)!r}: 'interval' is an interval key and "
                            "'intervals' a list of keys (e.g. '2026-01-01' or '2026-01-01T05')")
        out.extend(named)
    return out


def _intervals_between(spec: PipelineSpec, start: datetime, end: datetime) -> list[Interval]:
    out: list[Interval] = []
    iv = spec.interval_at(start)
    while iv.start < end:
        out.append(iv)
        iv = spec.interval_at(iv.end)
    return out


def ready(spec: PipelineSpec, *, now: datetime, intervals: Iterable[str] = ()) -> list[Landed]:
    """Landed intervals, oldest first: those ``intervals`` names and every interval of the
    last ``airflow.landing_lookback`` that closed plus the late allowance before ``now`` and
    whose files are all there."""
    candidates: dict[str, Interval] = {}
    for key in intervals:
        try:
            iv = spec.interval_at(key)
        except SpecError as exc:
            raise SpecError(f"landing notification of {spec.name}: {exc}") from None
        candidates[iv.key] = iv
    start = max(now - spec.airflow.landing_lookback,
                datetime.combine(spec.start_date, datetime.min.time(), tzinfo=now.tzinfo))
    for iv in _intervals_between(spec, start, now):
        candidates.setdefault(iv.key, iv)
    out: list[Landed] = []
    for iv in sorted(candidates.values(), key=lambda i: i.start):
        if iv.end + spec.late_allowance > now:
            continue
        content = content_key(spec, iv)
        if content is not None:
            out.append(Landed(iv, content))
    return out
