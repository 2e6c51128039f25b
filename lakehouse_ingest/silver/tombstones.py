"""Tombstones: the key and version of every CDC delete, so a deleted row stays deleted.

A CDC delete (``_ab_cdc_deleted_at`` set) removes its row from the stream's table, and its key and version are
kept in a tombstone table (``_tombstones/<source>/<stream>``): an older insert or update of that key arriving
later (a late batch) is dropped instead of bringing the row back. A full-refresh snapshot replaces the tombstones
with its own deletes (and those of the batches after it), since it replaces the whole table.

Exactly once, with any number of writers:

- Each tombstone carries the generation and sync id of the batch that recorded it (``_lakehouse_generation_id``,
  ``_lakehouse_sync_id``). A batch's deletes are appended in one commit, once: applying it again finds them.
- Every tombstone commit sets the application transaction ``lakehouse.tombstones`` and is made from the table as
  read, so two concurrent writers of a stream's tombstones conflict instead of both landing; the loser's batch
  raises ``CommitConflict`` and is applied again. The table is created by its first commit or not at all
  (``SilverTables.write``).
- Reading, the newest tombstone of a key wins (several batches may have deleted it), and only the tombstones of
  the newest applied snapshot and after it count: a batch that recorded its deletes and then found itself stale
  (a newer snapshot was committed in the meantime) is never applied, so its deletes must not act either.
- A delete record itself is never dropped: the merge removes a row only for a newer delete, and a batch applied
  again after a lost commit race finds its own tombstones, which must not cancel its deletes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction

from lakehouse_ingest.silver.dedup import latest_per_key, version_columns
from lakehouse_ingest.silver.record import AppliedBatch, with_transactions
from lakehouse_ingest.silver.tables import SilverTables

CDC_DELETED = "_ab_cdc_deleted_at"
GENERATION_COLUMN = "_lakehouse_generation_id"
SYNC_COLUMN = "_lakehouse_sync_id"
TOMBSTONES_APP_ID = "lakehouse.tombstones"  # set by every tombstone commit (version: the batch's sync id)


@dataclass(frozen=True)
class Tombstones:
    """A stream's tombstone table as read once for a batch (None before its first commit): both dropping the
    records it supersedes and recording the batch's deletes work from this read."""

    uri: str
    table: DeltaTable | None
    rows: pa.Table | None


def read_tombstones(tables: SilverTables, source: str, stream: str) -> Tombstones:
    """The stream's tombstones, as of now."""
    uri = tables.tombstone_uri(source, stream)
    table = tables.open(uri)
    return Tombstones(uri, table, table.to_pyarrow_table() if table is not None else None)


def drop_tombstoned(
    tombstones: Tombstones,
    latest: pa.Table,
    keys: list[str],
    cursor: str | None,
    snapshot: AppliedBatch | None = None,
) -> pa.Table:
    """Drop records that an applied, newer delete supersedes (a late, older insert or update); ``snapshot`` is
    the newest full-refresh snapshot applied to the table (tombstones from before it do not count)."""
    known = _current(tombstones.rows, snapshot)
    if known is None or known.num_rows == 0:
        return latest
    versions = version_columns(cursor)
    known = latest_per_key(known.select(keys + versions), keys, cursor)  # the newest tombstone of each key
    # Join only keys and versions (Acero joins do not carry nested payload columns), then pick rows by index.
    mine = latest.select(keys + versions).append_column("__row", pa.array(range(latest.num_rows), pa.int64()))
    deleting = (
        pc.is_valid(latest.column(CDC_DELETED))
        if CDC_DELETED in latest.column_names
        else pa.repeat(pa.scalar(False), latest.num_rows)
    )
    mine = mine.append_column("__delete", deleting)
    joined = mine.join(known, keys=keys, join_type="left outer", right_suffix="__dead")
    older = pa.array([False] * joined.num_rows)
    undecided = pa.array([True] * joined.num_rows)
    for column in versions:
        ours, dead = joined.column(column), joined.column(f"{column}__dead")
        older = pc.or_(older, pc.and_(undecided, pc.fill_null(pc.less(ours, dead), False)))
        undecided = pc.and_(undecided, pc.fill_null(pc.equal(ours, dead), False))
    superseded = pc.or_(older, pc.and_(undecided, pc.is_valid(joined.column(f"{versions[-1]}__dead"))))
    superseded = pc.and_(superseded, pc.invert(joined.column("__delete")))
    kept = joined.filter(pc.invert(superseded)).column("__row")
    return latest.take(kept.take(pc.sort_indices(kept)))


def record_tombstones(
    tables: SilverTables,
    tombstones: Tombstones,
    latest: pa.Table,
    keys: list[str],
    cursor: str | None,
    this: AppliedBatch,
    commit: CommitProperties,
) -> None:
    """Remember each delete's key and version with the batch that made it, before the main table's commit
    (unless an earlier attempt at this batch already did)."""
    if CDC_DELETED not in latest.column_names:
        return
    deletes = latest.filter(pc.is_valid(latest.column(CDC_DELETED))).select(keys + version_columns(cursor))
    if deletes.num_rows == 0:
        return
    rows = tombstones.rows
    if (
        rows is not None
        and SYNC_COLUMN in rows.column_names
        and pc.any(pc.equal(rows.column(SYNC_COLUMN), this.sync_id)).as_py()
    ):
        return  # recorded by an earlier attempt (the same batch always has the same deletes)
    tables.write(
        tombstones.table if tombstones.table is not None else tombstones.uri,
        _tagged(deletes, this),
        _shared(commit, this),
    )


def reset_tombstones(
    tables: SilverTables,
    source: str,
    stream: str,
    deletes: pa.Table | None,
    this: AppliedBatch,
    commit: CommitProperties,
) -> None:
    """The stream's tombstones become exactly ``deletes`` (those of the new snapshot ``this`` and what follows it)."""
    uri = tables.tombstone_uri(source, stream)
    existing = tables.open(uri)
    if deletes is None or deletes.num_rows == 0:
        if existing is not None:
            existing.delete(commit_properties=_shared(commit, this))  # no commit when it is empty already
        return
    tables.write(
        existing if existing is not None else uri,
        _tagged(deletes, this),
        _shared(commit, this),
        mode="overwrite",
        schema_mode="overwrite",
    )


def _current(rows: pa.Table | None, snapshot: AppliedBatch | None) -> pa.Table | None:
    """The tombstones recorded by the snapshot ``snapshot`` or a batch after it (all of them without a snapshot;
    rows recorded before tombstones named their batch count too)."""
    if rows is None or snapshot is None or SYNC_COLUMN not in rows.column_names:
        return rows
    generation, sync_id = rows.column(GENERATION_COLUMN), rows.column(SYNC_COLUMN)
    later = pc.or_(
        pc.greater(generation, snapshot.generation_id),
        pc.and_(pc.equal(generation, snapshot.generation_id), pc.greater_equal(sync_id, snapshot.sync_id)),
    )
    return rows.filter(pc.fill_null(later, True))


def _tagged(deletes: pa.Table, this: AppliedBatch) -> pa.Table:
    count = deletes.num_rows
    deletes = deletes.append_column(GENERATION_COLUMN, pa.repeat(pa.scalar(this.generation_id, pa.int64()), count))
    return deletes.append_column(SYNC_COLUMN, pa.repeat(pa.scalar(this.sync_id, pa.int64()), count))


def _shared(commit: CommitProperties, this: AppliedBatch) -> CommitProperties:
    """``commit`` plus the transaction every tombstone commit sets, so concurrent ones conflict."""
    return with_transactions(commit, Transaction(TOMBSTONES_APP_ID, this.sync_id))
