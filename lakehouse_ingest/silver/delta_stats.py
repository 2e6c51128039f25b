"""Delta statistics of a data file written by the silver rewrite: the ``stats`` of its ``add`` action.

Delta readers (delta-rs, Spark, DuckDB, Trino) skip files with these statistics, so a bound stated here must hold
for every value of the file: numRecords, and minValues, maxValues and nullCount of each primitive leaf column (as
delta-rs states them: the first ``delta.dataSkippingNumIndexedCols`` (32) leaves, or the columns named by
``delta.dataSkippingStatsColumns``; strings cut to 32 characters; timestamps in milliseconds). A bound that cannot be
stated exactly is left out: missing statistics only cost skipping, wrong ones lose rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

STATS_STRING_PREFIX = 32  # delta-rs truncates string statistics to this many characters


def stats_columns(table: DeltaTable, schema: pa.Schema) -> Callable[[str], bool]:
    """Which leaf columns (dotted paths) get statistics: ``delta.dataSkippingStatsColumns`` if set, else the
    first ``delta.dataSkippingNumIndexedCols`` (32) leaves, as delta-rs decides."""
    configuration = table.metadata().configuration or {}
    named = configuration.get("delta.dataSkippingStatsColumns")
    if named:
        chosen = {n.strip().strip("`") for n in named.split(",") if n.strip()}
        return lambda path: any(path == c or path.startswith(f"{c}.") for c in chosen)
    try:
        limit = int(configuration.get("delta.dataSkippingNumIndexedCols") or 32)
    except ValueError:
        limit = 32
    leaves = _leaf_paths(schema)
    allowed = set(leaves if limit < 0 else leaves[:limit])
    return lambda path: path in allowed


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """Dotted paths of the schema's leaf columns, in order; a list or map counts as one leaf (no statistics)."""
    paths: list[str] = []

    def walk(prefix: str, field_: pa.Field) -> None:
        path = f"{prefix}{field_.name}"
        if pa.types.is_struct(field_.type):
            for child in field_.type:
                walk(f"{path}.", child)
        else:
            paths.append(path)

    for field_ in schema:
        walk("", field_)
    return paths


def delta_stats(metadata: pq.FileMetaData, schema: pa.Schema, wanted: Callable[[str], bool]) -> str:
    """The ``stats`` of a Delta ``add`` action from the Parquet footer: numRecords, and minValues, maxValues and
    nullCount of each primitive leaf (nested as the schema nests them). A bound that cannot be stated exactly
    (a decimal, a float with NaN, a long string's maximum that cannot be raised) is left out: missing statistics
    only cost skipping, wrong ones lose rows in every engine that skips with them."""
    types = _leaf_types(schema)
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    nulls: dict[str, Any] = {}
    for column in range(metadata.num_columns):
        path = metadata.row_group(0).column(column).path_in_schema if metadata.num_row_groups else ""
        leaf_type = types.get(path)
        if leaf_type is None or not wanted(path):
            continue  # inside a list or map, or not indexed
        low = high = None
        count: int | None = 0
        bounded = True
        for group in range(metadata.num_row_groups):
            statistics = metadata.row_group(group).column(column).statistics
            if statistics is None or not statistics.has_null_count:
                count = None
            elif count is not None:
                count += statistics.null_count
            if statistics is None or not statistics.has_min_max:
                if statistics is None or statistics.null_count != metadata.row_group(group).num_rows:
                    bounded = False  # values without bounds
                continue
            low = statistics.min if low is None else min(low, statistics.min)
            high = statistics.max if high is None else max(high, statistics.max)
        if count is not None:
            _put(nulls, path, count)
        if bounded and low is not None and high is not None:
            stated = _stat_value(leaf_type, low, upper=False), _stat_value(leaf_type, high, upper=True)
            if stated[0] is not None and stated[1] is not None:
                _put(minimum, path, stated[0])
                _put(maximum, path, stated[1])
    return json.dumps(
        {"numRecords": metadata.num_rows, "minValues": minimum, "maxValues": maximum, "nullCount": nulls},
        separators=(",", ":"),
    )


def _leaf_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    """Parquet leaf paths of the primitive columns outside lists and maps, with their Arrow types."""
    found: dict[str, pa.DataType] = {}

    def walk(prefix: str, field_: pa.Field) -> None:
        path = f"{prefix}{field_.name}"
        if "." in field_.name:
            return  # its Parquet path would be ambiguous: no statistics
        if pa.types.is_struct(field_.type):
            for child in field_.type:
                walk(f"{path}.", child)
        elif not (pa.types.is_list(field_.type) or pa.types.is_large_list(field_.type) or pa.types.is_map(field_.type)):
            found[path] = field_.type

    for field_ in schema:
        walk("", field_)
    return found


def _stat_value(kind: pa.DataType, value: Any, upper: bool) -> Any:
    """A Parquet statistic as Delta writes it in JSON, or None when it cannot be stated as a safe bound."""
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        return value if isinstance(value, bool | int) else None
    if pa.types.is_floating(kind):
        return value if isinstance(value, float) and math.isfinite(value) else None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return string_bound(value, upper) if isinstance(value, str) else None
    if pa.types.is_date32(kind) and type(value) is dt.date:
        return value.isoformat()
    if pa.types.is_timestamp(kind) and kind.tz is not None and isinstance(value, dt.datetime):
        utc = value.astimezone(dt.UTC)
        millis = utc.replace(microsecond=utc.microsecond // 1000 * 1000)
        if upper and millis != utc:
            millis += dt.timedelta(milliseconds=1)  # stated in ms: the maximum rounds up to stay a bound
        return millis.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis.microsecond // 1000:03d}Z"
    return None  # decimals, binary, timestamps without time zone, ...: no bound rather than a wrong one


def string_bound(value: str, upper: bool) -> str | None:
    """A string statistic cut to ``STATS_STRING_PREFIX`` characters: a prefix is a lower bound; an upper bound
    needs its last kept character raised (as delta-rs and Spark do), or none when that is impossible."""
    if len(value) <= STATS_STRING_PREFIX:
        return value
    prefix = value[:STATS_STRING_PREFIX]
    if not upper:
        return prefix
    for position in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[position]) + 1
        if 0xD800 <= point <= 0xDFFF:
            point = 0xE000
        if point <= 0x10FFFF:
            return prefix[:position] + chr(point)
    return None


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    """``target[a][b] = value`` for the path ``a.b``."""
    *parents, leaf = path.split(".")
    for name in parents:
        target = target.setdefault(name, {})
    target[leaf] = value
