"""Which record of a key is the newest: the rule every silver merge, snapshot and tombstone applies.

A record is newer than another of the same key by the stream's top-level cursor (when it has one; a value beats
no value), then by ``_airbyte_extracted_at``. The rule exists three times, in the same order: over Arrow tables
(``latest_per_key``, reducing a batch to one row per key), as a SQL predicate for Delta merges (``newer``), and as
an Arrow mask over matched rows for the file rewrite (``newer_mask``).
A row is replaced only by a strictly newer one, so batches commute and a late batch never overwrites newer data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_ingest.lake.documents import Manifest

EXTRACTED = "_airbyte_extracted_at"


def primary_key_columns(manifest: Manifest) -> list[str]:
    """The batch's top-level primary key columns (nested key paths are not merged by key)."""
    return [path[0] for path in manifest.primary_key if len(path) == 1]


def cursor_column(manifest: Manifest, batch: pa.Table) -> str | None:
    """The batch's cursor column, when it is one top-level column the batch has."""
    cursor_field = manifest.cursor_field
    return cursor_field[0] if len(cursor_field) == 1 and cursor_field[0] in batch.column_names else None


def version_columns(cursor: str | None) -> list[str]:
    """The columns that order a key's records, most significant first."""
    return [c for c in (cursor, EXTRACTED) if c]


def latest_per_key(table: pa.Table, keys: list[str], cursor: str | None) -> pa.Table:
    """One row per key: the newest by ``cursor`` (when there is one) and then ``_airbyte_extracted_at``.

    The result is sorted by key (inserted rows then land in files with narrow key ranges, which later merges
    can skip). Only the key and version columns are sorted; the payload of the winners alone is gathered.
    """
    if table.num_rows == 0:
        return table
    versions = [c for c in version_columns(cursor) if c in table.column_names]
    order = [(k, "ascending") for k in keys] + [(c, "descending") for c in versions]
    indices = pc.sort_indices(table.select(keys + versions), sort_keys=order)
    first = pa.array([True] + [False] * (len(indices) - 1))
    for key in keys:
        column = table.column(key).take(indices).combine_chunks()
        changed = pc.not_equal(column.slice(1), column.slice(0, len(column) - 1))
        first = pc.or_(first, pa.concat_arrays([pa.array([True]), pc.fill_null(changed, True)]))
    return table.take(indices.filter(first))


def newer(new: str, old: str, cursor: str | None) -> str:
    """SQL: the ``new`` row is strictly newer than the ``old`` one (cursor, then extraction time)."""
    by_extraction = f"{new}.{EXTRACTED} > {old}.{EXTRACTED}"
    if cursor is None:
        return by_extraction
    return (
        f"({new}.{cursor} > {old}.{cursor}) OR ({old}.{cursor} IS NULL AND {new}.{cursor} IS NOT NULL) OR "
        f"(({new}.{cursor} = {old}.{cursor} OR ({new}.{cursor} IS NULL AND {old}.{cursor} IS NULL)) "
        f"AND {by_extraction})"
    )


def newer_mask(new: Mapping[str, Any], old: Mapping[str, Any], cursor: str | None) -> pa.Array:
    """Row by row, the ``new`` version (its version columns, by name) is strictly newer than the ``old`` one:
    ``newer`` in Arrow (a NULL comparison is false, as in the SQL predicate)."""

    def true(expression: Any) -> Any:
        return pc.fill_null(expression, False)

    by_extraction = true(pc.greater(new[EXTRACTED], old[EXTRACTED]))
    if cursor is None:
        return _array(by_extraction)
    n, o = new[cursor], old[cursor]
    greater = true(pc.greater(n, o))
    appeared = pc.and_(pc.is_null(o), pc.is_valid(n))
    same = pc.or_(true(pc.equal(n, o)), pc.and_(pc.is_null(n), pc.is_null(o)))
    return _array(pc.or_(pc.or_(greater, appeared), pc.and_(same, by_extraction)))


def _array(values: Any) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
