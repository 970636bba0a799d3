"""The stable row hash: pinned test vector, an independent scalar implementation, invariants."""

from __future__ import annotations

import math
import struct
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from pipelines.errors import ReconciliationError
from pipelines.evidence import hashing as H

MASK = 2**64 - 1


def mix(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def bhash(b: bytes, seed: int) -> int:
    h = mix((seed ^ len(b)) & MASK)
    for i in range(0, len(b), 8):
        h = mix(h ^ int.from_bytes(b[i : i + 8].ljust(8, b"\0"), "little"))
    return h


def name(c: str) -> int:
    return bhash(c.encode(), H.TAG_NAME)


def col(c: str, v: object, kind: str) -> int:
    """The column hash, straight from the module docstring's definition."""
    if v is None:
        return mix(H.TAG_NULL ^ name(c))
    if kind == "str":
        return bhash(str(v).encode(), H.TAG_STR ^ name(c))
    if kind == "int":
        return mix(((int(v)) & MASK) ^ H.TAG_INT ^ name(c))  # type: ignore[call-overload]
    if kind == "float":
        x = float(v) + 0.0  # type: ignore[arg-type]
        w = H.CANONICAL_NAN if math.isnan(x) else struct.unpack("<Q", struct.pack("<d", x))[0]
        return mix(w ^ H.TAG_FLOAT ^ name(c))
    if kind == "datetime":
        assert isinstance(v, datetime)
        us = (v - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return mix((us & MASK) ^ H.TAG_DATETIME ^ name(c))
    if kind == "date":
        assert isinstance(v, date)
        return mix(((v - date(1970, 1, 1)).days & MASK) ^ H.TAG_DATE ^ name(c))
    raise AssertionError(kind)


KINDS = {"id": "int", "x": "float", "s": "str", "t": "datetime", "d": "date", "b": "int"}


def test_pinned_test_vector() -> None:
    df = H.vector_frame()
    kh, rh = H.hashes(df, ["id"], df.columns)
    assert [hex(int(x)) for x in rh] == H.TEST_VECTOR["row"]
    assert [hex(int(x)) for x in kh] == H.TEST_VECTOR["key"]


def test_matches_the_written_definition() -> None:
    df = H.vector_frame()
    kh, rh = H.hashes(df, ["id"], df.columns)
    for i, row in enumerate(df.iter_rows(named=True)):
        cols = {c: col(c, row[c], KINDS[c]) for c in df.columns}
        assert int(rh[i]) == mix((H.ROW_SEED + sum(cols.values())) & MASK)
        assert int(kh[i]) == mix((H.KEY_SEED + cols["id"]) & MASK)


def test_strings_of_every_length_match_the_definition() -> None:
    values = ["", "a", "1234567", "12345678", "123456789", "ü" * 13, "x" * 100, None]
    got = H.column_hash(pl.Series("s", values))
    assert [int(g) for g in got] == [col("s", v, "str") for v in values]


def test_canonical_encoding_invariants() -> None:
    def one(s: pl.Series) -> list[int]:
        return [int(x) for x in H.column_hash(s)]

    assert one(pl.Series("x", [0.0])) == one(pl.Series("x", [-0.0]))
    nan2 = np.frombuffer(struct.pack("<Q", 0x7FF8000000000123), dtype=np.float64)[0]
    assert one(pl.Series("x", [float("nan")])) == one(pl.Series("x", [nan2]))
    assert one(pl.Series("x", [1.5], dtype=pl.Float32)) == one(pl.Series("x", [1.5]))
    assert one(pl.Series("i", [5], dtype=pl.Int32)) == one(pl.Series("i", [5], dtype=pl.Int64))
    paris = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    utc = pl.Series("t", [datetime(2026, 1, 1, tzinfo=UTC)])
    assert one(pl.Series("t", [paris]).dt.convert_time_zone("Europe/Paris")) == one(utc)
    assert one(utc.dt.cast_time_unit("ns")) == one(utc) == one(utc.dt.cast_time_unit("ms"))
    assert one(pl.Series("t", [datetime(2026, 1, 1)])) == one(utc)  # naive = UTC
    assert one(pl.Series("x", [None], dtype=pl.Float64)) != one(pl.Series("x", [float("nan")]))
    assert one(pl.Series("a", [1])) != one(pl.Series("b", [1]))  # the column name counts


def test_column_order_does_not_matter_but_values_do() -> None:
    df = pl.DataFrame({"k": [1, 2], "a": ["x", "y"], "b": [1.0, 2.0]})
    r1 = H.row_hash(df, ["k", "a", "b"])
    r2 = H.row_hash(df.select("b", "k", "a"), ["b", "a", "k"])
    assert (r1 == r2).all()
    swapped = df.with_columns(a=pl.Series(["y", "x"]))
    assert (H.row_hash(swapped, ["k", "a", "b"]) != r1).all()


def test_unsupported_type_is_a_clear_error() -> None:
    with pytest.raises(ReconciliationError, match="not supported"):
        H.column_hash(pl.Series("l", [[1, 2]]))


def _mixed_frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    nulls = rng.random(n) < 0.1
    def holes(s: pl.Series) -> pl.Series:
        return s.to_frame().select(pl.when(pl.Series(nulls)).then(None).otherwise(pl.col(s.name))).to_series()

    words = ["", "a", "ü" * 5, "12345678", "x" * 21, "héllo wörld, longer than 8"]
    return pl.DataFrame({
        "i8": pl.Series(rng.integers(-100, 100, n), dtype=pl.Int8),
        "u32": pl.Series(rng.integers(0, 2**32, n), dtype=pl.UInt32),
        "u64": pl.Series(rng.integers(0, 2**63, n).astype(np.uint64) * 2, dtype=pl.UInt64),
        "i64": holes(pl.Series("i64", rng.integers(-(2**62), 2**62, n), dtype=pl.Int64)),
        "f32": pl.Series(rng.standard_normal(n), dtype=pl.Float32),
        "f64": pl.Series(np.where(rng.random(n) < 0.1, np.nan, rng.standard_normal(n))).fill_nan(None).fill_null(-0.0),
        "s": pl.Series([None if nulls[i] else words[i % len(words)] for i in range(n)], dtype=pl.String),
        "cat": pl.Series([words[i % 3] for i in range(n)], dtype=pl.Categorical),
        "bin": pl.Series([w.encode() for w in (words[i % len(words)] for i in range(n))], dtype=pl.Binary),
        "b": holes(pl.Series("b", rng.random(n) < 0.5, dtype=pl.Boolean)),
        "ts_ns": pl.Series(rng.integers(-(10**17), 10**17, n)).cast(pl.Datetime("ns", "Europe/Paris")),
        "ts_ms": pl.Series(rng.integers(-(10**12), 10**12, n)).cast(pl.Datetime("ms")),
        "d": pl.Series(rng.integers(-20000, 20000, n), dtype=pl.Int32).cast(pl.Date),
        "tm": pl.Series(rng.integers(0, 86_400 * 10**9, n)).cast(pl.Time),
        "dur": pl.Series(rng.integers(-(10**12), 10**12, n)).cast(pl.Duration("ms")),
        "null": pl.Series([None] * n, dtype=pl.Null),
    })


def test_compiled_kernels_equal_the_numpy_implementation() -> None:
    if H.kernels() is None:
        pytest.skip("numba not installed: only the numpy implementation runs")
    df = pl.concat([_mixed_frame(300, 1), _mixed_frame(200, 2)], rechunk=False)  # several chunks
    assert df["s"].n_chunks() > 1
    for c in df.columns:
        assert (H.column_hash(df[c]) == H.numpy_column_hash(df[c])).all(), c
    kh, rh = H.hashes(df, ["i64", "s"], df.columns)
    ref = [H.numpy_column_hash(df[c]) for c in ["i64", "s", *[c for c in df.columns if c not in ("i64", "s")]]]
    assert (kh == H.combine(ref[:2], H.KEY_SEED, df.height)).all()
    assert (rh == H.combine(ref, H.ROW_SEED, df.height)).all()
    # Arrow input (what the streaming diff reads), including plain and view strings and a sliced array
    import pyarrow as pa

    t = df.drop("cat").to_arrow()
    t = t.set_column(t.schema.get_field_index("s"), "s", t.column("s").cast(pa.string()))
    t = t.set_column(t.schema.get_field_index("bin"), "bin", t.column("bin").cast(pa.binary_view()))
    sliced = t.slice(7, 400)
    akh, arh = H.arrow_hashes(sliced, ["i64", "s"], sliced.column_names)
    pkh, prh = H.hashes(df.drop("cat").slice(7, 400), ["i64", "s"], sliced.column_names)
    assert (akh == pkh).all() and (arh == prh).all()
