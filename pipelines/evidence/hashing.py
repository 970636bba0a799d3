"""Key and row hashes of polars frames and Arrow tables under lockstep-rowhash-1.

The definition, its numpy reference and the test vector that pins it are in
:mod:`pipelines.evidence.rowhash` (re-exported here); the compiled kernels in
:mod:`pipelines.evidence.compiled`. Every function here takes the compiled path when numba
is installed and the input is large enough, else the reference: both give the same hashes.
The digest tree over these hashes is :mod:`pipelines.evidence.digest`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.evidence.compiled import arrow_pieces, kernels, run_pieces, series_pieces
from pipelines.evidence.digest import leaf_sums, select_leaves
from pipelines.evidence.rowhash import (
    CANONICAL_NAN,
    HASH_VERSION,
    KEY_SEED,
    ROW_SEED,
    TAG_BIN,
    TAG_DATE,
    TAG_DATETIME,
    TAG_DURATION,
    TAG_FLOAT,
    TAG_INT,
    TAG_NAME,
    TAG_NULL,
    TAG_STR,
    TAG_TIME,
    TEST_VECTOR,
    bytes_hash,
    combine,
    mix,
    mix_int,
    name_hash,
    numpy_column_hash,
    vector_frame,
)

__all__ = [
    "CANONICAL_NAN", "HASH_VERSION", "KEY_SEED", "ROW_SEED", "TAG_BIN", "TAG_DATE", "TAG_DATETIME", "TAG_DURATION",
    "TAG_FLOAT", "TAG_INT", "TAG_NAME", "TAG_NULL", "TAG_STR", "TAG_TIME", "TEST_VECTOR", "arrow_hashes",
    "bytes_hash", "column_hash", "column_hashes", "combine", "hashes", "kernels", "key_hash", "mix", "mix_int",
    "name_hash", "numpy_column_hash", "row_hash", "vector_frame", "warm_up",
]


def column_hash(s: pl.Series, name: str | None = None) -> np.ndarray:
    """The column hash of every value of ``s`` (named ``name``, default the series' name)."""
    name = s.name if name is None else name
    k = kernels(s.len())
    if k is None:
        return numpy_column_hash(s, name)
    return run_pieces(s.len(), [(series_pieces(k, s, name), False)], None)[1]


def warm_up() -> None:
    """Load every compiled kernel once (from numba's on-disk cache; compiled on the very first
    use): a process pays this once, about 0.1-0.3 s a kernel, before its first hash."""
    if kernels() is None:
        return
    df = vector_frame()
    kh, rh = hashes(df, ["id"], df.columns)
    table = df.to_arrow()
    table = table.set_column(table.schema.get_field_index("s"), "s", table.column("s").cast(pa.string()))
    arrow_hashes(table, ["id"], table.column_names)
    select_leaves(kh, leaf_sums(kh, rh, 4) > 0, 4)


def key_hash(df: pl.DataFrame, keys: list[str]) -> np.ndarray:
    return hashes(df, keys, keys)[0]


def row_hash(df: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """The row hash over ``columns`` (pass the keys too; order does not matter)."""
    return hashes(df, [], columns)[1]


def column_hashes(df: pl.DataFrame, columns: list[str]) -> list[np.ndarray]:
    """Column hashes of several columns."""
    return [column_hash(df[c]) for c in columns]


def hashes(df: pl.DataFrame, keys: list[str], columns: list[str],
           out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(key hash, row hash) of every row, sharing the key columns' hashes; ``out``: two
    uint64 arrays of the frame's length to write them into.

    Compiled: one pass over each column's buffers, rows in blocks on a thread pool."""
    cols = [c for c in dict.fromkeys(columns) if c not in keys]
    k = kernels(df.height)
    if k is None:
        all_h = [numpy_column_hash(df[c]) for c in [*keys, *cols]]
        kh, rh = combine(all_h[: len(keys)], KEY_SEED, df.height), combine(all_h, ROW_SEED, df.height)
        if out is None:
            return kh, rh
        out[0][:], out[1][:] = kh, rh
        return out
    plan = [(series_pieces(k, df[c], c), True) for c in keys] + [(series_pieces(k, df[c], c), False) for c in cols]
    return run_pieces(df.height, plan, (KEY_SEED, ROW_SEED), out)


def arrow_hashes(table: pa.Table | pa.RecordBatch, keys: list[str], columns: list[str],
                 out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hashes` of an Arrow table or batch (the streaming diff reads Arrow directly);
    ``out``: two uint64 arrays of the table's length to write (key hash, row hash) into."""
    cols = [c for c in dict.fromkeys(columns) if c not in keys]
    if kernels(table.num_rows) is None:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        kh, rh = hashes(frame, keys, columns)
        if out is not None:
            out[0][:], out[1][:] = kh, rh
            return out
        return kh, rh
    plan = [(arrow_pieces(table.column(c), c), True) for c in keys]
    plan += [(arrow_pieces(table.column(c), c), False) for c in cols]
    return run_pieces(table.num_rows, plan, (KEY_SEED, ROW_SEED), out)
