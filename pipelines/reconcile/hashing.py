"""The stable row hash lives with the evidence that publishes it
(:mod:`pipelines.evidence.hashing`); this name stays for ``diff`` and existing imports."""

from pipelines.evidence.hashing import *  # noqa: F403
from pipelines.evidence.hashing import (  # noqa: F401
    HASH_VERSION,
    TEST_VECTOR,
    column_hash,
    hashes,
    key_hash,
    row_hash,
)
