"""Exact duplicate detection (``unique`` rules and primary-key uniqueness) in memory of 8 bytes per row.

Each unit of row groups contributes a 64-bit hash per row of its key columns, ordered by bucket (the hash's
top bits); one small hash set per bucket then counts repeated hashes. Equal values have equal hashes, so no
repeat means no duplicate. Only when hashes repeat (duplicates, or rare collisions) are the rows read again
(the scan's ``rescan``) to confirm and count the duplicates exactly on their values.

The hash engine reads Arrow buffers directly: numbers and timestamps by their 64-bit pattern, strings and
binaries by their length and first and last 64 bytes, multiplied by odd constants to spread the bits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_ingest.bronze.checks.probes import Probe, Unit, read_failure
from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.bronze.checks.scan import workers

_MIX = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())  # odd: multiplying by it is a bijection of uint64
_MIX2 = pa.scalar(0xC2B2AE3D27D4EB4F, pa.uint64())
_BUCKET_ROWS = 16_384  # hashes per bucket: a hash set of this size stays in the CPU caches
_MAX_BUCKET_BITS = 12
_HASHED_PREFIX = 64  # bytes of a string hashed from its start (and as many from its end when longer)


_arange_lock = threading.Lock()
_arange_cache: list[pa.Array] = [pa.array([], pa.int64())]


def _arange(n: int) -> pa.Array:
    """0, 1, ..., n-1 as int64 (cached: building it from Python is slow)."""
    with _arange_lock:
        if len(_arange_cache[0]) < n:
            size = max(n, 2 * len(_arange_cache[0]), 1024)
            _arange_cache[0] = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), size)), 1)
        return _arange_cache[0].slice(0, n)


def _hash_fixed_bytes(data: pa.Array, width: int, seed: pa.Array) -> pa.Array:
    """Mix ``width`` bytes per row (``data``: binary values of exactly ``width`` bytes, contiguous) into ``seed``."""
    offsets = pa.Array.from_buffers(
        pa.int64() if pa.types.is_large_binary(data.type) else pa.int32(),
        len(data) + 1,
        [None, data.buffers()[1]],
        offset=data.offset,
    )
    start = offsets[0].as_py() if len(data) else 0
    words_per_row = width // 8
    buffer = data.buffers()[2]
    assert buffer is not None
    words = pa.Array.from_buffers(
        pa.uint64(), len(data) * words_per_row, [None, buffer.slice(start, len(data) * width)]
    )
    rows = pc.multiply(_arange(len(data)), words_per_row)
    hashed = seed
    for j in range(words_per_row):
        word = words.take(pc.add(rows, j) if j else rows)
        hashed = pc.multiply(pc.bit_wise_xor(hashed, word), _MIX)
    return hashed


def _padded(values: pa.Array, width: int) -> pa.Array:
    """Each value's first ``width`` bytes, zero-padded to exactly ``width``, as binary."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        padded = pc.ascii_rpad(values, width, padding="\0")
        padded = padded.cast(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary())
    else:
        padded = pc.binary_join_element_wise(values, pa.scalar(b"\0" * width, values.type), pa.scalar(b"", values.type))
    lengths = pc.min_max(pc.binary_length(padded))
    if lengths["min"].as_py() != width or lengths["max"].as_py() != width:
        padded = pc.binary_slice(padded, 0, width)
    return padded


def _hash_bytes(values: pa.Array) -> pa.Array:
    """A 64-bit hash of each string/binary value (no nulls): its length, first 64 and last 64 bytes."""
    lengths = pc.binary_length(values)
    seed = pc.multiply(lengths.cast(pa.uint64()), _MIX)
    if len(values) == 0:
        return seed
    longest = int(pc.max(lengths).as_py() or 0)
    width = min(_HASHED_PREFIX, max(8, (longest + 7) // 8 * 8))
    hashed = _hash_fixed_bytes(_padded(values, width), width, seed)
    if longest > _HASHED_PREFIX:  # long values: their ends as well
        binary = pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary()
        as_binary = (
            values.cast(binary) if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) else values
        )
        hashed = _hash_fixed_bytes(_padded(pc.binary_reverse(as_binary), width), width, hashed)
    return hashed


_BYTES_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)


_NULL_HASH = pa.scalar(0x5BD1E9955BD1E995, pa.uint64())  # a null field inside a (non-null) struct key


def _hash_values(values: pa.Array) -> pa.Array | None:
    """A 64-bit hash per value, equal for equal values; None for types without one here."""
    if isinstance(values, pa.DictionaryArray):
        values = values.dictionary_decode()
    kind = values.type
    if values.null_count:
        try:
            filler = pa.scalar(False if pa.types.is_boolean(kind) else 0, kind)
        except (pa.ArrowException, TypeError):
            filler = pa.scalar("" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else b"", kind)
        hashed = _hash_values(pc.fill_null(values, filler))
        return None if hashed is None else pc.if_else(pc.is_valid(values), hashed, _NULL_HASH)
    if pa.types.is_uint64(kind):
        as_int = values.view(pa.int64())
    elif pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        as_int = values.cast(pa.int64())
    elif pa.types.is_floating(kind):
        floats = pc.add(values.cast(pa.float64()), 0.0)  # -0.0 + 0.0 is 0.0
        floats = pc.if_else(pc.is_nan(floats), float("nan"), floats)  # one NaN
        as_int = floats.view(pa.int64())
    elif pa.types.is_temporal(kind) and not pa.types.is_interval(kind):
        width = kind.bit_width
        as_int = values.view(pa.int64()) if width == 64 else values.view(pa.int32()).cast(pa.int64())
    elif any(check(kind) for check in _BYTES_TYPES):
        return _hash_bytes(values)
    else:
        return None
    return pc.multiply(as_int.view(pa.uint64()), _MIX)


def _key_hashes(keys: pa.Table) -> pa.Array | None:
    """One hash per row of ``keys`` (the combination of its columns' hashes); None when a type has none."""
    combined: pa.Array | None = None
    for column in keys.columns:
        hashed = _hash_values(column.combine_chunks())
        if hashed is None:
            return None
        if combined is not None:
            hashed = pc.multiply(pc.bit_wise_xor(pc.multiply(combined, _MIX2), hashed), _MIX)
        combined = hashed
    return combined


def _keys(table: pa.Table, columns: list[str]) -> pa.Table:
    """The key columns of the rows without a null in them, struct keys flattened into their fields."""
    keys = table.select(columns)
    if any(keys.column(c).null_count for c in columns):
        keys = keys.drop_null()
    while any(pa.types.is_struct(f.type) for f in keys.schema):
        keys = keys.flatten()
    return keys


@dataclass
class Hashes:
    """The hashes of one row group's keys, ordered by bucket, and where each bucket starts."""

    values: pa.Array
    starts: list[int] = field(default_factory=list)


class Unique(Probe):
    """No two rows of the batch share the value(s) of ``columns`` (rows with a null in them are not counted).

    Each row group contributes a 64-bit hash per row, ordered by bucket (the hash's top bits); one small
    hash set per bucket then counts repeated hashes. Equal values have equal hashes, so no repeat means no
    duplicate; repeats (duplicates, or rare collisions) are confirmed by reading those rows' values again.
    """

    def __init__(self, name: str, columns: list[str], rows: int) -> None:
        self.name = name
        self.key_columns = columns
        self.columns = tuple(columns)
        self.bits = 0
        while (_BUCKET_ROWS << self.bits) < rows and self.bits < _MAX_BUCKET_BITS:
            self.bits += 1

    def data(self, table: pa.Table, unit: Unit) -> Any:
        keys = _keys(table, self.key_columns)
        hashed = _key_hashes(keys)
        if hashed is None:
            return None  # no hash for this type: the values are grouped exactly at the end
        if not self.bits:
            return [Hashes(hashed, [0, len(hashed)])]
        buckets = pc.shift_right(hashed, pa.scalar(64 - self.bits, pa.uint64())).cast(pa.uint16())
        order = pc.sort_indices(buckets)
        ordered = buckets.take(order)
        bounds = pc.search_sorted(ordered, pa.array(range((1 << self.bits) + 1), pa.uint16()))
        return [Hashes(hashed.take(order), bounds.to_pylist())]

    def merge(self, partials: list[Any]) -> Any:
        return None if any(p is None for p in partials) else [h for p in partials for h in p]

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        if failed := read_failure(self.name, partials):
            return failed
        listed = ", ".join(self.key_columns)
        if not partials:
            return CheckResult(self.name, True, "no rows")
        assert self.rescan is not None
        if any(p is None for _, p in partials):  # a key type without a hash: all values
            return self._exact(((unit, _keys(table, self.key_columns)) for unit, table in self.rescan(self)), listed)
        repeated = _repeated_hashes([h for _, p in partials for h in p], 1 << self.bits)
        if repeated is None:
            return CheckResult(self.name, True, f"0 duplicate row(s) of {listed}")
        candidates = []
        for unit, table in self.rescan(self):
            keys = _keys(table, self.key_columns)
            hashed = _key_hashes(keys)
            assert hashed is not None
            candidates.append((unit, keys.filter(pc.is_in(hashed, value_set=repeated))))
        return self._exact(candidates, listed)

    def _exact(self, parts: Iterable[tuple[Unit, pa.Table]], listed: str) -> CheckResult:
        """Duplicates among the given rows (``_keys`` of each unit), exactly, and the first file where one repeats."""
        tables, order = [], []
        for number, (unit, keys) in enumerate(parts):
            tables.append(keys.append_column("__unit", pa.repeat(pa.scalar(number, pa.int64()), keys.num_rows)))
            order.append(unit)
        merged = pa.concat_tables(tables, promote_options="permissive")
        merged = merged.append_column("__row", _arange(merged.num_rows))
        names = [n for n in merged.column_names if n not in {"__unit", "__row"}]
        try:
            groups = merged.group_by(names, use_threads=False).aggregate([("__row", "min")])
        except pa.ArrowNotImplementedError:
            kinds = ", ".join(sorted({str(merged.schema.field(n).type) for n in names}))
            return CheckResult(self.name, False, f"values of type {kinds} cannot be compared for uniqueness")
        duplicates = merged.num_rows - groups.num_rows
        if duplicates == 0:
            return CheckResult(self.name, True, f"0 duplicate row(s) of {listed}")
        later = merged.filter(pc.invert(pc.is_in(merged.column("__row"), value_set=groups.column("__row_min"))))
        first = order[int(pc.min(later.column("__unit")).as_py())].key
        return CheckResult(self.name, False, f"{duplicates} duplicate row(s) of {listed}", first)


def _repeated_hashes(parts: list[Hashes], buckets: int) -> pa.Array | None:
    """The hash values that occur more than once across ``parts`` (None when none does)."""

    def bucket(number: int) -> pa.Array | None:
        pieces = [p.values.slice(p.starts[number], p.starts[number + 1] - p.starts[number]) for p in parts]
        pieces = [p for p in pieces if len(p)]
        if not pieces:
            return None
        values = pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]
        if len(pc.unique(values)) == len(values):
            return None
        counts = pc.value_counts(values)
        return counts.field("values").filter(pc.greater(counts.field("counts"), 1))

    with ThreadPoolExecutor(max_workers=workers()) as pool:
        found = [r for r in pool.map(bucket, range(buckets)) if r is not None]
    return pa.concat_arrays(found) if found else None
