"""Tombstones: the key and version of every CDC delete, so a deleted row stays deleted.

A CDC delete (``_ab_cdc_deleted_at`` set) removes its row from the stream's table, and its key and version are
kept in a tombstone table (``_tombstones/<source>/<stream>``, newest per key): an older insert or update of that
key arriving later (a late batch) is dropped instead of bringing the row back. A full-refresh snapshot replaces
the tombstones with its own deletes (and those of the batches after it), since it replaces the whole table.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, write_deltalake

from lakehouse_ingest.silver.dedup import newer, version_columns
from lakehouse_ingest.silver.tables import SilverTables

CDC_DELETED = "_ab_cdc_deleted_at"


def drop_tombstoned(
    tables: SilverTables, source: str, stream: str, latest: pa.Table, keys: list[str], cursor: str | None
) -> pa.Table:
    """Drop records that an already-applied, newer delete supersedes (a late, older insert or update)."""
    tombstones = tables.open(tables.tombstone_uri(source, stream))
    if tombstones is None:
        return latest
    known = tombstones.to_pyarrow_table()
    if known.num_rows == 0:
        return latest
    versions = version_columns(cursor)
    # Join only keys and versions (Acero joins do not carry nested payload columns), then pick rows by index.
    mine = latest.select(keys + versions).append_column("__row", pa.array(range(latest.num_rows), pa.int64()))
    joined = mine.join(known.select(keys + versions), keys=keys, join_type="left outer", right_suffix="__dead")
    older = pa.array([False] * joined.num_rows)
    undecided = pa.array([True] * joined.num_rows)
    for column in versions:
        ours, dead = joined.column(column), joined.column(f"{column}__dead")
        older = pc.or_(older, pc.and_(undecided, pc.fill_null(pc.less(ours, dead), False)))
        undecided = pc.and_(undecided, pc.fill_null(pc.equal(ours, dead), False))
    superseded = pc.or_(older, pc.and_(undecided, pc.is_valid(joined.column(f"{versions[-1]}__dead"))))
    keep = pc.sort_indices(joined.filter(pc.invert(superseded)).column("__row"))
    rows = joined.filter(pc.invert(superseded)).column("__row").take(keep)
    return latest.take(rows)


def record_tombstones(
    tables: SilverTables,
    source: str,
    stream: str,
    latest: pa.Table,
    keys: list[str],
    cursor: str | None,
    commit: CommitProperties,
) -> None:
    """Remember each delete's key and version (newest wins), before the main table commit."""
    if CDC_DELETED not in latest.column_names:
        return
    deletes = latest.filter(pc.is_valid(latest.column(CDC_DELETED))).select(keys + version_columns(cursor))
    if deletes.num_rows == 0:
        return
    uri = tables.tombstone_uri(source, stream)
    existing = tables.open(uri)
    if existing is None:
        write_deltalake(uri, deletes, mode="append", storage_options=tables.options, commit_properties=commit)
        return
    (
        existing.merge(
            deletes,
            " AND ".join(f"t.{k} = s.{k}" for k in keys),
            source_alias="s",
            target_alias="t",
            commit_properties=commit,
        )
        .when_matched_update_all(predicate=newer("s", "t", cursor))
        .when_not_matched_insert_all()
        .execute()
    )


def reset_tombstones(
    tables: SilverTables, source: str, stream: str, deletes: pa.Table | None, commit: CommitProperties
) -> None:
    """The stream's tombstones become exactly ``deletes`` (those of the new snapshot and what follows it)."""
    uri = tables.tombstone_uri(source, stream)
    if deletes is None or deletes.num_rows == 0:
        existing = tables.open(uri)
        if existing is not None:
            existing.delete(commit_properties=commit)  # no commit when it is empty already
        return
    write_deltalake(
        uri,
        deletes,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=tables.options,
        commit_properties=commit,
    )
