"""OpenLineage names of storage URIs: the datasets of lineage events and of audit events."""

from __future__ import annotations

import os
from urllib.parse import urlparse

__all__ = ["dataset_name"]


def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a storage URI.

    >>> dataset_name("/lake/p/eu-west/raw/transactions")
    ('file', '/lake/p/eu-west/raw/transactions')
    >>> dataset_name("s3://lake-eu/lockstep/p/eu-west/raw/transactions")
    ('s3://lake-eu', 'lockstep/p/eu-west/raw/transactions')
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a local path (or C:\...)
        return "file", os.path.abspath(parsed.path if parsed.scheme == "file" else uri)
    scheme = {"gcs": "gs", "s3a": "s3"}.get(parsed.scheme, parsed.scheme)
    return f"{scheme}://{parsed.netloc}", parsed.path.lstrip("/")
