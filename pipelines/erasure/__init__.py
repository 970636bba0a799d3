"""Erasure of a data subject as an audited decision (``lockstep erase``).

* :mod:`~pipelines.erasure.subject`: the subject (a column and its values) and the tables
  holding the column, checked before anything is written;
* :mod:`~pipelines.erasure.apply`: the rows removed in every region, one ``erase`` row per
  region in the erasure log, the affected intervals re-certified as new generations;
* :mod:`~pipelines.erasure.status`: pending and completed erasures, request to removal.

``lockstep maintain`` then deletes the older files still holding the rows, whatever kept them
(:mod:`pipelines.maintain`), and a read of a removed version names the erasure.

Example::

    subject = find_subject(spec, "card_id", read_values(["4000123"], None))
    done = erase(spec, local_principal(spec, "erase"), subject, reason="GDPR art. 17 request #81")
"""

from __future__ import annotations

from pipelines.erasure.apply import Erasure, affected_intervals, erase
from pipelines.erasure.status import erasure_status
from pipelines.erasure.subject import Subject, Target, find_subject, read_values

__all__ = ["Erasure", "Subject", "Target", "affected_intervals", "erase", "erasure_status", "find_subject",
           "read_values"]
