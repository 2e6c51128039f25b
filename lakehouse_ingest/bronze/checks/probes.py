"""Probes: how every check of a batch is put so that one pass can evaluate them all.

Every check is a *probe*. A probe first tries to decide each row group from the Parquet footer statistics
(null counts, min/max); a file whose row groups the footers all decide is not read for it. Otherwise it
judges the columns the scan (``scan``) read for it, one unit of row groups at a time, and its partial
outcomes are merged in file order into one result. Results never carry data values (they may be personal
data): only counts and the file where the first violation is.

Here: the probe protocol and what it is fed (``Unit``, ``Footer``, ``ReadError``), the counting probes, and
the built-in data checks' probes (sync and generation id, primary key not null). The catalog's rules are in
``rules``, uniqueness in ``uniqueness``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_ingest.bronze.checks.results import CheckResult

# The batch's files in order: (key, footer-only ParquetFile).
Files = list[tuple[str, pq.ParquetFile]]


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


# Reads a probe's columns again over the whole batch, unit by unit (for probes that need a second pass).
Rescan = Callable[["Probe"], Iterator[tuple[Unit, pa.Table]]]


class Probe:
    """One check over the batch's rows: footer decisions first, then data, merged in file order."""

    name: str = ""
    columns: tuple[str, ...] = ()  # top-level columns it reads
    dictionary_ok: tuple[str, ...] = ()  # of those, the ones it can take dictionary-encoded
    rescan: Rescan | None = None  # set by the scan before ``result`` (``Unique`` confirms repeated hashes with it)

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


def unreadable(name: str, unit: Unit, error: ReadError) -> CheckResult:
    """The failed result of a probe whose columns in ``unit`` could not be read."""
    return CheckResult(name, False, f"row group {error.group} cannot be read: {error.message}", unit.key)


def read_failure(name: str, partials: list[tuple[Unit, Any]]) -> CheckResult | None:
    """The failed result for the first unreadable unit among ``partials``, or None when every unit was read."""
    for unit, partial in partials:
        if isinstance(partial, ReadError):
            return unreadable(name, unit, partial)
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
        if failed := read_failure(self.name, partials):
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
                return unreadable(self.name, unit, partial)
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
                return unreadable(self.name, unit, partial)
            nulls, low, high = partial
            if nulls:
                return CheckResult(self.name, False, f"rows without {self.path}", unit.key)
            if low != self.expected or high != self.expected:
                detail = f"{self.label}s {low}..{high}, expected {self.expected}"
                return CheckResult(self.name, False, detail, unit.key)
        return CheckResult(self.name, True, f"every row carries {self.label} {self.expected}")


class Fixed(Probe):
    """A result known without reading anything."""

    def __init__(self, outcome: CheckResult) -> None:
        self.outcome = outcome
        self.name = outcome.name

    def footer(self, footer: Footer, group: int) -> Any:
        return True

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        return self.outcome
