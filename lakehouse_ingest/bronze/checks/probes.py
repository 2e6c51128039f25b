"""Declarative checks of a stream batch, from the catalog (``streams[].checks``), and the one-pass scan
that evaluates them together with the built-in data checks.

Every check is a *probe*. A probe first tries to decide each row group from the Parquet footer statistics
(null counts, min/max); a file whose row groups the footers all decide is not read for it. Otherwise each
column is read once per row group for all the probes that need it (``scan``). Row groups are read in
parallel, each worker thread with its own file handle, and their columns are dropped as soon as the probes
have seen them, so memory stays bounded by a few row groups. Uniqueness keeps one 64-bit hash per row, partitioned into
buckets small enough for a fast hash set each; only when hashes repeat are the rows read again to confirm
and count the duplicates exactly. Results never carry data values (they may be personal data): only counts
and the file where the first violation is.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.catalog.sources import FreshnessRule, RangeRule, StreamChecks

Files = list[tuple[str, pq.ParquetFile]]
# Opens a private reader of file ``index`` for one worker thread (``read_dictionary``: columns to keep encoded).
Opener = Callable[[int, Sequence[str]], pq.ParquetFile]
# Airbyte columns older destinations store as int64 epoch milliseconds (accepted by checks.airbyte_columns).
_EPOCH_MS_COLUMNS = {"_airbyte_extracted_at", "_airbyte_emitted_at"}
_MIX = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())  # odd: multiplying by it is a bijection of uint64
_MIX2 = pa.scalar(0xC2B2AE3D27D4EB4F, pa.uint64())
_BUCKET_ROWS = 16_384  # hashes per bucket: a hash set of this size stays in the CPU caches
_MAX_BUCKET_BITS = 12
_HASHED_PREFIX = 64  # bytes of a string hashed from its start (and as many from its end when longer)


def workers() -> int:
    """Threads for reading row groups (pyarrow releases the GIL while decoding)."""
    return max(1, min(8, os.cpu_count() or 1))


# -- units of reading and partial outcomes --------------------------------------------------------------


@dataclass(frozen=True)
class ReadError:
    """A row group whose columns could not be read."""

    group: int
    message: str


@dataclass(frozen=True)
class Unit:
    """Consecutive row groups of one file (one, unless they are small): the unit of reading and parallelism."""

    index: int  # position in the batch's file order
    key: str
    groups: tuple[int, ...]
    rows: tuple[int, ...]  # rows of each of those row groups

    @property
    def group(self) -> int:
        """The first row group."""
        return self.groups[0]

    def group_of(self, row: int) -> tuple[int, int, int]:
        """(row group, its first row, its row count) of a row of the unit's table."""
        start = 0
        for group, count in zip(self.groups, self.rows, strict=True):
            if row < start + count:
                return group, start, count
            start += count
        raise IndexError(row)


@dataclass(frozen=True)
class Footer:
    """One file's metadata, with its leaf columns by dotted path (looked up once per file)."""

    parquet: pq.ParquetFile
    leaves: dict[str, int]

    @classmethod
    def of(cls, parquet: pq.ParquetFile) -> Footer:
        schema = parquet.metadata.schema
        return cls(parquet, {schema.column(i).path: i for i in range(parquet.metadata.num_columns)})

    def statistics(self, group: int, path: str) -> Any:
        """Statistics of the leaf ``path`` in row group ``group`` (None when absent or without null count)."""
        index = self.leaves.get(path)
        if index is None:
            return None
        stats = self.parquet.metadata.row_group(group).column(index).statistics
        return stats if stats is not None and stats.has_null_count else None

    def rows(self, group: int) -> int:
        return int(self.parquet.metadata.row_group(group).num_rows)


class Probe:
    """One check over the batch's rows: footer decisions first, then data, merged in file order."""

    name: str = ""
    columns: tuple[str, ...] = ()  # top-level columns it reads
    dictionary_ok: tuple[str, ...] = ()  # of those, the ones it can take dictionary-encoded

    def missing(self, parquet: pq.ParquetFile) -> CheckResult | None:
        """A failed result when the file lacks a column the probe needs (then nothing else is asked)."""
        for column in self.columns:
            if parquet.schema_arrow.get_field_index(column) < 0:
                return CheckResult(self.name, False, f"column {column} is missing")
        return None

    def footer(self, footer: Footer, group: int) -> Any:
        """The partial outcome of row group ``group`` from its statistics, or None when they do not decide it."""
        return None

    def data(self, table: pa.Table, unit: Unit) -> Any:
        """The partial outcome of one unit's row groups (or of a batch of a large row group) from their columns."""
        raise NotImplementedError

    def merge(self, partials: list[Any]) -> Any:
        """One partial outcome from those of consecutive batches of one unit (in order, none a ReadError)."""
        if len(partials) != 1:
            raise NotImplementedError
        return partials[0]

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        """Merge the partial outcomes (file order); ``from_footer`` when no data had to be read."""
        raise NotImplementedError


def _unreadable(name: str, unit: Unit, error: ReadError) -> CheckResult:
    return CheckResult(name, False, f"row group {error.group} cannot be read: {error.message}", unit.key)


def _read_failure(name: str, partials: list[tuple[Unit, Any]]) -> CheckResult | None:
    for unit, partial in partials:
        if isinstance(partial, ReadError):
            return _unreadable(name, unit, partial)
    return None


def _values(table: pa.Table, column: str, nested: Sequence[str] = ()) -> pa.Array:
    """The values of a column (or of a field nested in it) in one row group, as one array."""
    values = table.column(column).combine_chunks()
    if isinstance(values, pa.DictionaryArray):
        values = values.dictionary_decode()
    for part in nested:
        values = pc.struct_field(values, part) if pa.types.is_struct(values.type) else values
    return values


class CountProbe(Probe):
    """Counts rows that break the rule; names the first file with any."""

    what = ""

    def __init__(self, name: str, column: str, nested: Sequence[str] = ()) -> None:
        self.name = name
        self.column = ".".join([column, *nested])  # the leaf's path, as footers name it
        self.nested = tuple(nested)
        self.columns = (column,)

    def count(self, values: pa.Array) -> int:
        raise NotImplementedError

    def data(self, table: pa.Table, unit: Unit) -> Any:
        return self.count(_values(table, self.columns[0], self.nested))

    def merge(self, partials: list[Any]) -> Any:
        return sum(partials)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        if failed := _read_failure(self.name, partials):
            return failed
        total = sum(int(p) for _, p in partials)
        first = next((u.key for u, p in partials if p), None)
        return CheckResult(self.name, total == 0, self.detail(total, from_footer), first)

    def detail(self, total: int, from_footer: bool) -> str:
        return f"{total} row(s) {self.what}"


class NotNull(CountProbe):
    """``not_null``: null counts from the footers when every row group has them."""

    what = "with a null value"

    def __init__(self, column: str, nested: Sequence[str] = ()) -> None:
        super().__init__(f"not_null({column})", column, nested)

    def footer(self, footer: Footer, group: int) -> Any:
        stats = footer.statistics(group, self.column)
        return None if stats is None else stats.null_count

    def count(self, values: pa.Array) -> int:
        return int(values.null_count)

    def detail(self, total: int, from_footer: bool) -> str:
        if from_footer:
            return f"{total} null value(s) (from footer statistics)"
        return super().detail(total, from_footer)


class PrimaryKeyNotNull(NotNull):
    """The built-in ``primary_key_not_null``: fails on the first row group holding a null key."""

    def __init__(self, path: list[str]) -> None:
        super().__init__(path[0], path[1:])
        self.name = f"primary_key_not_null({self.column})"

    def missing(self, parquet: pq.ParquetFile) -> CheckResult | None:
        if parquet.schema_arrow.get_field_index(self.columns[0]) < 0:
            return CheckResult(self.name, False, f"primary-key column {self.column} is missing")
        return None

    def footer(self, footer: Footer, group: int) -> Any:
        nulls = super().footer(footer, group)
        return None if nulls is None else (nulls, group)

    def data(self, table: pa.Table, unit: Unit) -> Any:
        values = _values(table, self.columns[0], self.nested)
        if not values.null_count:
            return (0, unit.group)
        first = int(pc.index(pc.is_null(values), True).as_py())
        group, start, count = unit.group_of(first)
        return (values.slice(start, count).null_count, group)

    def merge(self, partials: list[Any]) -> Any:
        """The first row group with nulls (batches of one row group add up), else no null."""
        by_group: dict[int, int] = {}
        for nulls, group in partials:
            by_group[group] = by_group.get(group, 0) + nulls
        return next(((nulls, group) for group, nulls in by_group.items() if nulls), (0, partials[0][1]))

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        for unit, partial in partials:
            if isinstance(partial, ReadError):
                return _unreadable(self.name, unit, partial)
            nulls, group = partial
            if nulls:
                return CheckResult(self.name, False, f"{nulls} null value(s) in row group {group}", unit.key)
        return CheckResult(self.name, True, f"{self.column} is never null")


class Constant(Probe):
    """Every row carries one value in an int64 leaf (``_airbyte_meta.sync_id``, ``_airbyte_generation_id``).

    Decided from the footers when a row group's statistics show no null and min == max == the value.
    """

    def __init__(self, name: str, path: str, expected: int, label: str) -> None:
        self.name = name
        self.path = path
        self.expected = expected
        self.label = label  # "sync id", "generation id"
        self.columns = (path.split(".")[0],)

    def footer(self, footer: Footer, group: int) -> Any:
        stats = footer.statistics(group, self.path)
        if stats is None or stats.null_count or not stats.has_min_max or stats.physical_type != "INT64":
            return None
        return (0, int(stats.min), int(stats.max))

    def data(self, table: pa.Table, unit: Unit) -> Any:
        """The first row group of the unit that breaks the rule (its nulls, min, max), else the expected value."""
        start = 0
        for count in unit.rows:
            found = self._group(table.slice(start, count))
            if found != (0, self.expected, self.expected):
                return found
            start += count
        return (0, self.expected, self.expected)

    def merge(self, partials: list[Any]) -> Any:
        """The first batch or row group that breaks the rule, else the expected value."""
        expected = (0, self.expected, self.expected)
        return next((p for p in partials if p != expected), expected)

    def _group(self, table: pa.Table) -> tuple[int, Any, Any]:
        top = table.column(self.columns[0]).combine_chunks()
        if self.path != self.columns[0]:
            if top.null_count:
                return (top.null_count, None, None)
            top = pc.struct_field(top, self.path.split(".")[1])
        if top.null_count:
            return (top.null_count, None, None)
        if len(top) == 0:
            return (0, self.expected, self.expected)
        low, high = pc.min_max(top).values()
        return (0, low.as_py(), high.as_py())

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        for unit, partial in partials:
            if isinstance(partial, ReadError):
                return _unreadable(self.name, unit, partial)
            nulls, low, high = partial
            if nulls:
                return CheckResult(self.name, False, f"rows without {self.path}", unit.key)
            if low != self.expected or high != self.expected:
                detail = f"{self.label}s {low}..{high}, expected {self.expected}"
                return CheckResult(self.name, False, detail, unit.key)
        return CheckResult(self.name, True, f"every row carries {self.label} {self.expected}")


class Accepted(CountProbe):
    """``accepted_values``: a column read dictionary-encoded is judged on its dictionary only."""

    what = "outside the accepted values"

    def __init__(self, column: str, values: list[Any]) -> None:
        super().__init__(f"accepted_values({column})", column)
        self.allowed = pa.array(values)
        self.dictionary_ok = self.columns

    def _outside(self, array: pa.Array) -> pa.Array:
        # Cast the accepted values, not the data: a failed cast then quotes the catalog, never a data value.
        accepted = self.allowed.cast(array.type) if array.type != self.allowed.type else self.allowed
        # is_in never yields null (a null is just not in the set): accept nulls explicitly, as the other rules do.
        return pc.invert(pc.or_(pc.is_in(array, value_set=accepted), pc.is_null(array)))

    def data(self, table: pa.Table, unit: Unit) -> Any:
        values = table.column(self.column).combine_chunks()
        if isinstance(values, pa.DictionaryArray):
            outside = self._outside(values.dictionary).take(values.indices)  # null index: null, not counted
            return int(pc.sum(outside).as_py() or 0)
        return int(pc.sum(self._outside(values)).as_py() or 0)


class Range(CountProbe):
    """``range``: row groups whose min/max statistics lie inside the bounds are not read."""

    def __init__(self, column: str, rule: RangeRule) -> None:
        super().__init__(f"range({column})", column)
        self.rule = rule
        self.what = f"outside [{rule.min}, {rule.max}]"

    def footer(self, footer: Footer, group: int) -> Any:
        kind = footer.parquet.schema_arrow.field(self.column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
        stats = footer.statistics(group, self.column)
        if stats is None:
            return None
        if not stats.has_min_max:  # only nulls (or no rows): nothing outside
            return 0 if stats.null_count == footer.rows(group) else None
        low_ok = self.rule.min is None or stats.min >= self.rule.min
        high_ok = self.rule.max is None or stats.max <= self.rule.max
        return 0 if low_ok and high_ok else None

    def count(self, values: pa.Array) -> int:
        count = 0
        if self.rule.min is not None:
            count += int(pc.sum(pc.less(values, self.rule.min)).as_py() or 0)
        if self.rule.max is not None:
            count += int(pc.sum(pc.greater(values, self.rule.max)).as_py() or 0)
        return count


class Regex(CountProbe):
    """``regex``: values (cast to string) must match; nulls are not counted."""

    def __init__(self, column: str, pattern: str) -> None:
        super().__init__(f"regex({column})", column)
        re.compile(pattern)
        self.pattern = pattern
        self.what = f"not matching {pattern!r}"

    def count(self, values: pa.Array) -> int:
        matched = pc.match_substring_regex(values.cast(pa.string()), pattern=self.pattern)
        return int(pc.sum(pc.invert(pc.fill_null(matched, True))).as_py() or 0)


class Changes(CountProbe):
    """Rows where Airbyte recorded changes (nulled or truncated values); fails above ``limit`` when given."""

    what = "with changes recorded by Airbyte"

    def __init__(self, limit: int | None) -> None:
        super().__init__("airbyte_changes", "_airbyte_meta", ["changes"])
        self.limit = limit

    def count(self, values: pa.Array) -> int:
        lengths = pc.list_value_length(values)
        return int(pc.sum(pc.greater(pc.fill_null(lengths, 0), 0)).as_py() or 0)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        counted = super().result(partials, from_footer)
        if not counted.passed and "cannot be read" in counted.detail:
            return counted
        count = sum(int(p) for _, p in partials)
        passed = self.limit is None or count <= self.limit
        limit_text = "report only" if self.limit is None else f"at most {self.limit}"
        return CheckResult(self.name, passed, f"{counted.detail} ({limit_text})", counted.file if count else None)


class Freshness(Probe):
    """The newest value of a timestamp column (max statistics when present) must be recent enough."""

    def __init__(self, rule: FreshnessRule) -> None:
        self.rule = rule
        self.name = f"freshness({rule.column})"
        self.columns = (rule.column,)

    def _unit_seconds(self, parquet: pq.ParquetFile) -> float | None:
        kind = parquet.schema_arrow.field(self.rule.column).type
        if pa.types.is_int64(kind) and self.rule.column in _EPOCH_MS_COLUMNS:
            return 1e-3
        if pa.types.is_timestamp(kind):
            return None  # statistics come back as datetimes
        return -1.0  # not a timestamp: nothing to judge by

    def footer(self, footer: Footer, group: int) -> Any:
        scale = self._unit_seconds(footer.parquet)
        if scale == -1.0:
            return ("none",)
        stats = footer.statistics(group, self.rule.column)
        if stats is None:
            return None
        if not stats.has_min_max:
            return ("none",) if stats.null_count == footer.rows(group) else None
        top = stats.max
        if scale is not None and isinstance(top, int):
            return ("max", top * scale)
        if hasattr(top, "timestamp"):
            if top.tzinfo is None:  # a naive timestamp: read as UTC, as the data path does
                top = top.replace(tzinfo=UTC)
            return ("max", float(top.timestamp()))
        return None

    def data(self, table: pa.Table, unit: Unit) -> Any:
        values = table.column(self.rule.column).combine_chunks()
        if pa.types.is_int64(values.type) and self.rule.column in _EPOCH_MS_COLUMNS:
            values = values.cast(pa.timestamp("ms", tz="UTC"))
        if not pa.types.is_timestamp(values.type) or values.null_count == len(values):
            return ("none",)
        top = pc.max(values).cast(pa.timestamp("us", tz="UTC")).value
        return ("max", top / 1e6)

    def merge(self, partials: list[Any]) -> Any:
        tops = [p[1] for p in partials if p[0] == "max"]
        return ("max", max(tops)) if tops else ("none",)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        if failed := _read_failure(self.name, partials):
            return failed
        tops = [p[1] for _, p in partials if p[0] == "max"]
        if not tops:
            return CheckResult(self.name, False, "no timestamp value to judge freshness by")
        age = time.time() - max(tops)
        return CheckResult(
            self.name,
            age <= self.rule.seconds,
            f"newest value is {age:.0f} s old, at most {self.rule.seconds:.0f} s allowed",
        )


# -- uniqueness ----------------------------------------------------------------------------------------


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
        self.rescan: Callable[[Probe], Iterator[tuple[Unit, pa.Table]]] | None = None

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
        if failed := _read_failure(self.name, partials):
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


# -- the scan ------------------------------------------------------------------------------------------


_RUN_ROWS = 65_536  # small row groups are read together, up to this many rows
_RUN_GROUPS = 256


def scan(files: Files, probes: list[Probe], opener: Opener) -> list[CheckResult]:
    """Evaluate ``probes`` over the batch in one pass: footers first, then each needed column once per row group.

    Per file, a probe whose every row group the footers decide reads nothing there; otherwise it reads the
    file's row groups. All probes reading a row group share one read of the union of their columns.
    """
    results: dict[int, CheckResult] = {}
    partials: dict[int, list[tuple[Unit, Any]]] = {i: [] for i in range(len(probes))}
    from_footer = dict.fromkeys(range(len(probes)), True)
    wanted: list[tuple[Unit, list[int]]] = []
    units: list[Unit] = []
    for index, (key, parquet) in enumerate(files):
        footer = Footer.of(parquet)
        runs = _runs(index, key, footer)
        units += runs
        readers_here = []
        for number, probe in enumerate(probes):
            if number in results:
                continue
            if (missing := probe.missing(parquet)) is not None:
                results[number] = CheckResult(missing.name, False, missing.detail, key)
                continue
            decided = [probe.footer(footer, group) for group in range(parquet.num_row_groups)]
            if all(d is not None for d in decided):
                partials[number] += [(_single(index, key, footer, g), d) for g, d in enumerate(decided)]
            else:
                readers_here.append(number)
                from_footer[number] = False
        wanted += [(run, readers_here) for run in runs if readers_here]
    wanted = [(unit, [n for n in ns if n not in results]) for unit, ns in wanted]
    wanted = [(unit, ns) for unit, ns in wanted if ns]
    needed = {n for _, ns in wanted for n in ns}
    plain = {c for n in needed for c in probes[n].columns if c not in probes[n].dictionary_ok}
    encoded = sorted({c for n in needed for c in probes[n].dictionary_ok} - plain)
    readers = _Readers(opener, encoded)
    threaded = len(wanted) > 1 and workers() > 1

    def run(item: tuple[Unit, list[int]]) -> dict[int, Any]:
        unit, numbers = item
        return _read_unit(readers, unit, [(n, probes[n]) for n in numbers], use_threads=not threaded)

    if threaded:
        with ThreadPoolExecutor(max_workers=workers()) as pool:
            outcomes = list(pool.map(run, wanted))
    else:
        outcomes = [run(item) for item in wanted]
    for (unit, _), outcome in zip(wanted, outcomes, strict=True):
        for number, partial in outcome.items():
            partials[number].append((unit, partial))

    def rescan(probe: Probe) -> Iterator[tuple[Unit, pa.Table]]:
        reader = _Readers(opener, [])
        for unit in units:
            yield from _pieces(reader, unit, list(probe.columns), True)

    out = []
    for number, probe in enumerate(probes):
        if number in results:
            out.append(results[number])
            continue
        ordered = sorted(partials[number], key=lambda item: (item[0].index, item[0].group))
        if isinstance(probe, Unique):
            probe.rescan = rescan
        out.append(probe.result(ordered, from_footer[number]))
    return out


def _single(index: int, key: str, footer: Footer, group: int) -> Unit:
    return Unit(index, key, (group,), (footer.rows(group),))


def _runs(index: int, key: str, footer: Footer) -> list[Unit]:
    """The file's row groups as units: one each, or consecutive small ones together."""
    runs: list[Unit] = []
    groups: list[int] = []
    rows: list[int] = []
    for group in range(footer.parquet.num_row_groups):
        groups.append(group)
        rows.append(footer.rows(group))
        if len(groups) >= _RUN_GROUPS or sum(rows) >= _RUN_ROWS:
            runs.append(Unit(index, key, tuple(groups), tuple(rows)))
            groups, rows = [], []
    if groups:
        runs.append(Unit(index, key, tuple(groups), tuple(rows)))
    return runs


class _Readers:
    """One reader per file and worker thread: a pyarrow ParquetFile must not be shared between threads."""

    def __init__(self, opener: Opener, encoded: Sequence[str]) -> None:
        self.opener = opener
        self.encoded = encoded
        self.local = threading.local()

    def get(self, index: int) -> pq.ParquetFile:
        cache: dict[int, pq.ParquetFile] | None = getattr(self.local, "readers", None)
        if cache is None:
            cache = self.local.readers = {}
        if index not in cache:
            cache.clear()  # units come in file order: keep one open file per thread
            cache[index] = self.opener(index, self.encoded)
        return cache[index]


def _read(readers: _Readers, unit: Unit, columns: list[str], use_threads: bool) -> pa.Table:
    reader = readers.get(unit.index)
    if len(unit.groups) == 1:
        return reader.read_row_group(unit.group, columns=columns, use_threads=use_threads)
    return reader.read_row_groups(list(unit.groups), columns=columns, use_threads=use_threads)


_BATCH_ROWS = 262_144  # a larger row group is read in batches of this many rows (bounds memory per worker)


def _pieces(readers: _Readers, unit: Unit, columns: list[str], use_threads: bool) -> Iterator[tuple[Unit, pa.Table]]:
    """The unit's columns: in one table, or batch by batch when it is one large row group."""
    if len(unit.groups) > 1 or unit.rows[0] <= _BATCH_ROWS:
        yield unit, _read(readers, unit, columns, use_threads)
        return
    batches = readers.get(unit.index).iter_batches(
        batch_size=_BATCH_ROWS, row_groups=[unit.group], columns=columns, use_threads=use_threads
    )
    for batch in batches:
        yield Unit(unit.index, unit.key, unit.groups, (batch.num_rows,)), pa.Table.from_batches([batch])


def _read_unit(readers: _Readers, unit: Unit, probes: list[tuple[int, Probe]], use_threads: bool) -> dict[int, Any]:
    """Read the columns ``probes`` need from the unit's row groups once; each probe gives its partial outcome.

    ``use_threads``: no other unit is read at the same time, so Arrow decodes columns in parallel and the
    probes judge the table in parallel (they only read it).
    """
    columns = sorted({c for _, p in probes for c in p.columns})
    found: dict[int, list[Any]] = {number: [] for number, _ in probes}
    parallel = use_threads and len(probes) > 1 and workers() > 1
    try:
        for piece, table in _pieces(readers, unit, columns, use_threads):

            def judge(item: tuple[int, Probe], piece: Unit = piece, table: pa.Table = table) -> Any:
                try:
                    return item[1].data(table, piece)
                except (OSError, pa.ArrowException) as exc:
                    return ReadError(piece.group, _short(exc))

            if parallel:  # the only unit being read: its probes in parallel
                with ThreadPoolExecutor(max_workers=workers()) as pool:
                    judged = list(pool.map(judge, probes))
            else:
                judged = [judge(item) for item in probes]
            for (number, _), partial in zip(probes, judged, strict=True):
                found[number].append(partial)
            del table
    except (OSError, pa.ArrowException):
        # Find which row group and columns are unreadable, so only the checks that need them fail.
        return {number: _read_alone(readers, unit, probe) for number, probe in probes}
    return {number: _merged(probe, found[number]) for number, probe in probes}


def _read_alone(readers: _Readers, unit: Unit, probe: Probe) -> Any:
    """One probe's partial outcome from its own columns, row group by row group (after a failed shared read)."""
    found = []
    for group, rows in zip(unit.groups, unit.rows, strict=True):
        try:
            for piece, table in _pieces(
                readers, Unit(unit.index, unit.key, (group,), (rows,)), list(probe.columns), False
            ):
                found.append(probe.data(table, piece))
        except (OSError, pa.ArrowException) as exc:
            return ReadError(group, _short(exc))
    return _merged(probe, found)


def _merged(probe: Probe, partials: list[Any]) -> Any:
    errors = [p for p in partials if isinstance(p, ReadError)]
    return errors[0] if errors else probe.merge(partials)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


# -- the catalog's rules ---------------------------------------------------------------------------------


def rule_probes(rows: int, checks: StreamChecks, primary_key: list[str]) -> list[Probe]:
    """The probes of every rule the catalog declares for the stream, plus primary-key uniqueness."""
    probes: list[Probe] = []
    if primary_key:
        probes.append(Unique("primary_key_unique", primary_key, rows))
    probes += [NotNull(column) for column in checks.not_null]
    probes += [Unique(f"unique({column})", [column], rows) for column in checks.unique]
    probes += [Accepted(column, values) for column, values in checks.accepted_values.items()]
    probes += [Range(column, rule) for column, rule in checks.range.items()]
    probes += [Regex(column, pattern) for column, pattern in checks.regex.items()]
    if checks.freshness is not None:
        probes.append(Freshness(checks.freshness))
    return probes


def size_rules(rows: int, checks: StreamChecks, overwrite: bool = False) -> list[CheckResult]:
    """The rules decided by the row count alone.

    An empty batch fails by default when it is an overwrite's snapshot: applied, it would empty the silver
    table, and a source that suddenly returns nothing is more often broken than empty. ``zero_rows: allow``
    says an empty snapshot is real.
    """
    results: list[CheckResult] = []
    if rows == 0:
        policy = checks.zero_rows or ("fail" if overwrite else "allow")
        reason = "" if checks.zero_rows else (", the default for overwrite" if overwrite else ", the default")
        results.append(CheckResult("zero_rows", policy == "allow", f"empty batch ({policy}{reason})"))
    if checks.min_records is not None:
        ok = rows >= checks.min_records
        results.append(CheckResult("min_records", ok, f"{rows} rows, at least {checks.min_records} required"))
    return results


def changes_probe(files: Files, checks: StreamChecks) -> Probe:
    """Airbyte's recorded changes (destinations before 1.0 record none)."""
    if any("_airbyte_meta" not in p.schema_arrow.names for _, p in files):
        return Fixed(CheckResult("airbyte_changes", True, "not recorded by this destination version"))
    return Changes(checks.max_changes)


class Decodable(Probe):
    """``verify_data``: every column of every row group decodes.

    Footer statistics decide many checks without reading their columns, and columns no check names are
    never read; a corrupt page there would pass validation and fail silver's merge instead. This probe
    reads them all (in the same pass as the other probes), so such a file is caught and quarantined here.
    """

    name = "decodable"

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)

    def data(self, table: pa.Table, unit: Unit) -> Any:
        return table.num_rows

    def merge(self, partials: list[Any]) -> Any:
        return sum(partials)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        if failed := _read_failure(self.name, partials):
            return failed
        rows = sum(int(p) for _, p in partials)
        return CheckResult(self.name, True, f"{len(self.columns)} column(s) of {rows} row(s) decoded")


class Fixed(Probe):
    """A result known without reading anything."""

    def __init__(self, outcome: CheckResult) -> None:
        self.outcome = outcome
        self.name = outcome.name

    def footer(self, footer: Footer, group: int) -> Any:
        return True

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        return self.outcome
