"""Declarative checks of a stream batch, from the catalog (``streams[].checks``).

Each rule reads as little as it can: counts and min/max come from the Parquet footers' statistics when those
decide the question, and otherwise one column is read at a time, row group by row group, so memory stays
bounded by a row group. Results never carry data values (they may be personal data): only counts and the
file where the first violation is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .catalog import FreshnessRule, RangeRule, StreamChecks
from .results import CheckResult

Files = list[tuple[str, pq.ParquetFile]]
# Airbyte columns older destinations store as int64 epoch milliseconds (accepted by checks.airbyte_columns).
_EPOCH_MS_COLUMNS = {"_airbyte_extracted_at", "_airbyte_emitted_at"}


def evaluate(files: Files, rows: int, checks: StreamChecks, primary_key: list[str]) -> list[CheckResult]:
    """Every rule the catalog declares for the stream, plus primary-key uniqueness."""
    results: list[CheckResult] = []
    if rows == 0:
        results.append(CheckResult("zero_rows", checks.zero_rows == "allow", f"empty batch ({checks.zero_rows})"))
    if checks.min_records is not None:
        ok = rows >= checks.min_records
        results.append(CheckResult("min_records", ok, f"{rows} rows, at least {checks.min_records} required"))
    rules: list[Callable[[], CheckResult]] = []
    if primary_key:
        rules.append(partial(_unique, files, primary_key, "primary_key_unique"))
    rules += [partial(_not_null, files, column) for column in checks.not_null]
    rules += [partial(_unique, files, [column], f"unique({column})") for column in checks.unique]
    rules += [partial(_accepted, files, column, values) for column, values in checks.accepted_values.items()]
    rules += [partial(_range, files, column, rule) for column, rule in checks.range.items()]
    rules += [partial(_regex, files, column, pattern) for column, pattern in checks.regex.items()]
    if checks.freshness is not None:
        rules.append(partial(_freshness, files, checks.freshness))
    rules.append(partial(_changes, files, checks.max_changes))
    # One after the other: a ParquetFile reader must not be shared between threads (concurrent reads of one
    # reader crashed the interpreter in testing); Arrow parallelises each column read internally.
    results += [rule() for rule in rules]
    return results


def _columns(files: Files, column: str) -> Iterator[tuple[str, int, pa.Array | None]]:
    """(file, row group, values) of one column, one row group at a time; None when the column is missing."""
    for key, parquet in files:
        if column not in parquet.schema_arrow.names:
            yield key, -1, None
            continue
        for group in range(parquet.num_row_groups):
            yield key, group, parquet.read_row_group(group, columns=[column]).column(0).combine_chunks()


def _count_where(files: Files, column: str, name: str, bad: Callable[[pa.Array], int], what: str) -> CheckResult:
    """Count rows for which ``bad`` holds; name the first file with any."""
    total, first = 0, None
    for key, _, values in _columns(files, column):
        if values is None:
            return CheckResult(name, False, f"column {column} is missing", key)
        found = bad(values)
        if found and first is None:
            first = key
        total += found
    return CheckResult(name, total == 0, f"{total} row(s) {what}", first)


def _not_null(files: Files, column: str) -> CheckResult:
    name = f"not_null({column})"
    if all(column in p.schema_arrow.names for _, p in files):
        counts = [_footer_nulls(p, column) for _, p in files]
        if all(c is not None for c in counts):  # decided from the footers, no data read
            first = next((k for (k, _), c in zip(files, counts, strict=True) if c), None)
            total = sum(c or 0 for c in counts)
            return CheckResult(name, total == 0, f"{total} null value(s) (from footer statistics)", first)
    return _count_where(files, column, name, lambda v: v.null_count, "with a null value")


def _footer_nulls(parquet: pq.ParquetFile, column: str) -> int | None:
    """Null count of a top-level leaf column from the row-group statistics, or None when unknown."""
    paths = [parquet.metadata.schema.column(i).path for i in range(parquet.metadata.num_columns)]
    if column not in paths:
        return None
    index = paths.index(column)
    total = 0
    for group in range(parquet.num_row_groups):
        stats = parquet.metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def _unique(files: Files, columns: list[str], name: str) -> CheckResult:
    """No two rows of the batch share the value(s) of ``columns`` (nulls are not counted).

    One hash aggregation over all parts decides it; only when there are duplicates are the parts walked
    again to name the first one where a duplicate appears.
    """
    parts: list[pa.Table] = []
    for key, parquet in files:
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            return CheckResult(name, False, f"column {missing[0]} is missing", key)
        parts.append(parquet.read(columns=columns))
    if not parts:
        return CheckResult(name, True, "no rows")
    table = pa.concat_tables(parts, promote_options="permissive")
    duplicates = _duplicates(table, columns)
    if duplicates == 0:
        return CheckResult(name, True, f"0 duplicate row(s) of {', '.join(columns)}")
    first, seen = None, 0
    for (key, _), upto in zip(files, range(1, len(parts) + 1), strict=True):
        found = _duplicates(pa.concat_tables(parts[:upto], promote_options="permissive"), columns)
        if found > seen:
            first = key
            break
    return CheckResult(name, False, f"{duplicates} duplicate row(s) of {', '.join(columns)}", first)


def _duplicates(table: pa.Table, columns: list[str]) -> int:
    """Rows (without nulls in ``columns``) minus distinct value combinations."""
    table = table.drop_null()
    # A hash group-by is ~5x faster than pc.count_distinct on strings (measured on 2M emails: 0.3 s vs 1.9 s).
    return int(table.num_rows - table.group_by(columns).aggregate([]).num_rows)


def _accepted(files: Files, column: str, values: list[Any]) -> CheckResult:
    allowed = pa.array(values)

    def outside(array: pa.Array) -> int:
        # Cast the accepted values, not the data: a failed cast then quotes the catalog, never a data value.
        accepted = allowed.cast(array.type) if array.type != allowed.type else allowed
        # is_in never yields null (a null is just not in the set): accept nulls explicitly, as the other rules do.
        inside = pc.or_(pc.is_in(array, value_set=accepted), pc.is_null(array))
        return int(pc.sum(pc.invert(inside)).as_py() or 0)

    return _count_where(files, column, f"accepted_values({column})", outside, "outside the accepted values")


def _range(files: Files, column: str, rule: RangeRule) -> CheckResult:
    def outside(array: pa.Array) -> int:
        count = 0
        if rule.min is not None:
            count += int(pc.sum(pc.less(array, rule.min)).as_py() or 0)
        if rule.max is not None:
            count += int(pc.sum(pc.greater(array, rule.max)).as_py() or 0)
        return count

    return _count_where(files, column, f"range({column})", outside, f"outside [{rule.min}, {rule.max}]")


def _regex(files: Files, column: str, pattern: str) -> CheckResult:
    re.compile(pattern)

    def mismatching(array: pa.Array) -> int:
        matched = pc.match_substring_regex(array.cast(pa.string()), pattern=pattern)
        return int(pc.sum(pc.invert(pc.fill_null(matched, True))).as_py() or 0)

    return _count_where(files, column, f"regex({column})", mismatching, f"not matching {pattern!r}")


def _freshness(files: Files, rule: FreshnessRule) -> CheckResult:
    name = f"freshness({rule.column})"
    newest: float | None = None
    for key, _, values in _columns(files, rule.column):
        if values is None:
            return CheckResult(name, False, f"column {rule.column} is missing", key)
        if pa.types.is_int64(values.type) and rule.column in _EPOCH_MS_COLUMNS:
            values = values.cast(pa.timestamp("ms", tz="UTC"))
        if not pa.types.is_timestamp(values.type) or values.null_count == len(values):
            continue
        top = pc.max(values).cast(pa.timestamp("us", tz="UTC")).value
        newest = top / 1e6 if newest is None else max(newest, top / 1e6)
    if newest is None:
        return CheckResult(name, False, "no timestamp value to judge freshness by")
    age = time.time() - newest
    return CheckResult(
        name, age <= rule.seconds, f"newest value is {age:.0f} s old, at most {rule.seconds:.0f} s allowed"
    )


def _changes(files: Files, limit: int | None) -> CheckResult:
    """Rows where Airbyte recorded changes (nulled or truncated values); fails above ``limit`` when given."""

    def changed(meta: pa.Array) -> int:
        lengths = pc.list_value_length(pc.struct_field(meta, "changes"))
        return int(pc.sum(pc.greater(pc.fill_null(lengths, 0), 0)).as_py() or 0)

    result = _count_where(files, "_airbyte_meta", "airbyte_changes", changed, "with changes recorded by Airbyte")
    if result.detail.startswith("column"):  # legacy column set: no _airbyte_meta
        return CheckResult("airbyte_changes", True, "not recorded by this destination version")
    count = int(result.detail.split(" ")[0])
    passed = limit is None or count <= limit
    limit_text = "report only" if limit is None else f"at most {limit}"
    return CheckResult("airbyte_changes", passed, f"{result.detail} ({limit_text})", result.file if count else None)
