"""Applying one validated batch to its silver table: the entry point (``apply_manifest``) and incremental batches.

- Input is a manifest (the handoff contract), never a listing: its files are read (``bronze_files``), and the
  batch is reduced to the latest record per primary key (``dedup``).
- ``apply_manifest`` decides: a batch the table's record (``record``) already holds is not applied again; a batch
  older than the newest applied full-refresh snapshot (an older generation, or the same generation and an
  earlier sync) is stale: it is skipped, and the skip is committed with its sync id and the reason so it is
  never pending again and never brings back replaced rows; a snapshot replaces the table (``overwrite``); any
  other batch is merged here.
- Merge by primary key: a row is updated only by a *newer* record, so batches commute and a late batch can
  never overwrite newer data. Only the data files whose key range can hold one of the batch's keys are read and
  rewritten, with Arrow, in one commit (``rewrite``); delta-rs ``merge`` where the rewrite does not apply (schema
  evolution, table features). A CDC delete removes the row and leaves a tombstone (``tombstones``). Streams
  without a primary key are appended. A Delta commit is atomic, so a crash leaves the previous version intact
  and a re-run applies the batch again. New columns evolve the table schema.
- Rows keep every bronze column, so ``_airbyte_meta.sync_id``, ``_airbyte_raw_id`` and
  ``_airbyte_extracted_at`` are the lineage of each silver row.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_FIELDS
from lakehouse_ingest.bronze.manifest import manifest_sync_ids
from lakehouse_ingest.errors import CommitConflict, StorageError, one_line
from lakehouse_ingest.lake.documents import Manifest
from lakehouse_ingest.lake.keys import silver_table_key
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.silver.bronze_files import read_batch
from lakehouse_ingest.silver.dedup import cursor_column, latest_per_key, newer, primary_key_columns
from lakehouse_ingest.silver.overwrite import overwrite_snapshot
from lakehouse_ingest.silver.record import SKIPPED_METADATA, AppliedBatch, BatchRecord, commit_properties
from lakehouse_ingest.silver.result import SilverResult
from lakehouse_ingest.silver.rewrite import rewrite_merge
from lakehouse_ingest.silver.tables import SilverTables
from lakehouse_ingest.silver.tombstones import CDC_DELETED, drop_tombstoned, read_tombstones, record_tombstones

OVERWRITE_MODES = frozenset({"overwrite", "overwrite_dedup", "overwrite_deduped"})


def is_overwrite(manifest: Manifest) -> bool:
    """The batch is a full-refresh snapshot (Airbyte ``overwrite`` / ``overwrite_dedup``)."""
    return manifest.destination_sync_mode.lower() in OVERWRITE_MODES


def apply_manifest(bronze: LakeStorage, tables: SilverTables, manifest: Manifest) -> SilverResult:
    """Merge one validated batch into its silver table, unless it was applied (or skipped as stale) before.

    A commit that loses a race with another writer of the table (or of its tombstones), including another
    writer creating the table first, raises ``CommitConflict`` (retryable): applying the batch again re-reads the
    table's record and either finds the batch there or applies it on top. The storage failing under delta-rs (a
    request timed out, the connection dropped: an ``OSError`` with its causes on several lines) is a
    ``StorageError`` (retryable, one line): whether or not the commit landed, applying the batch again re-reads the
    record the same way.
    """
    batch = f"{manifest.source}.{manifest.stream} sync {manifest.sync_id}"
    try:
        return _apply(bronze, tables, manifest)
    except (CommitFailedError, CommitConflict) as exc:
        raise CommitConflict(
            f"{batch}: another writer committed to the silver table first ({str(exc).splitlines()[0][:200]})"
        ) from exc
    except OSError as exc:
        raise StorageError(f"{batch}: {one_line(str(exc))}") from exc


def _apply(bronze: LakeStorage, tables: SilverTables, manifest: Manifest) -> SilverResult:
    source, stream, sync_id = manifest.source, manifest.stream, manifest.sync_id
    this = AppliedBatch(manifest.generation_id, sync_id, overwrite=is_overwrite(manifest))
    uri = tables.table_uri(source, stream)
    record = tables.record(source, stream)
    if record.get(sync_id) is not None:
        return SilverResult(source, stream, sync_id, uri, applied=False)
    snapshot = record.snapshot()
    if snapshot is not None and (this.generation_id, sync_id) < (snapshot.generation_id, snapshot.sync_id):
        reason = (
            f"stale: generation {this.generation_id} (sync {sync_id}) is older than the full-refresh snapshot "
            f"already in silver (generation {snapshot.generation_id}, sync {snapshot.sync_id})"
        )
        return _skip(tables, record, uri, manifest, this, reason)
    if this.overwrite:
        # the batches after it that were applied first: Delta only looks transactions up one by one, so the
        # candidates are the stream's manifests in bronze
        candidates = manifest_sync_ids(bronze, source, stream) - {sync_id}
        later = sorted(b for b in record.batches(candidates).values() if not b.skipped and b > this)
        return overwrite_snapshot(bronze, tables, record, uri, manifest, this, later)
    batch = read_batch(bronze, manifest)
    commit = commit_properties(manifest, this, "incremental", record)
    keys = primary_key_columns(manifest)
    if not keys or batch.num_rows == 0:
        return _append(tables, record, uri, batch, manifest, commit)
    cursor = cursor_column(manifest, batch)
    latest = latest_per_key(batch, keys, cursor)
    tombstones = read_tombstones(tables, source, stream)
    latest = drop_tombstoned(tombstones, latest, keys, cursor, snapshot)
    record_tombstones(tables, tombstones, latest, keys, cursor, this, commit_properties(manifest, this, "incremental"))
    rows_in = batch.num_rows
    del batch  # ``latest`` is a copy: the merge holds the batch once, not twice
    return _merge(tables, record, uri, latest, keys, cursor, manifest, commit, rows_in)


def _skip(
    tables: SilverTables, record: BatchRecord, uri: str, manifest: Manifest, this: AppliedBatch, reason: str
) -> SilverResult:
    """Commit no rows, only the stale batch's sync id and why it was skipped (so it is never pending again)."""
    commit = commit_properties(manifest, this, "skipped", record, **{SKIPPED_METADATA: reason})
    tables.append(record.target(uri), pa.schema(list(AIRBYTE_FIELDS)).empty_table(), commit)
    return SilverResult(
        manifest.source,
        manifest.stream,
        this.sync_id,
        uri,
        applied=False,
        rows_in=manifest.rows,
        version=tables.version(uri),
        skipped=reason,
    )


def _append(
    tables: SilverTables,
    record: BatchRecord,
    uri: str,
    batch: pa.Table,
    manifest: Manifest,
    commit: CommitProperties,
) -> SilverResult:
    source, stream, sync_id = manifest.source, manifest.stream, manifest.sync_id
    if batch.num_rows == 0 and record.table is None:
        batch = pa.schema(list(AIRBYTE_FIELDS)).empty_table()  # a zero-row first batch still creates the table
    tables.append(record.target(uri), batch, commit)
    return SilverResult(
        source, stream, sync_id, uri, True, batch.num_rows, inserted=batch.num_rows, version=tables.version(uri)
    )


def _merge(
    tables: SilverTables,
    record: BatchRecord,
    uri: str,
    latest: pa.Table,
    keys: list[str],
    cursor: str | None,
    manifest: Manifest,
    commit: CommitProperties,
    rows_in: int,
) -> SilverResult:
    source, stream, sync_id = manifest.source, manifest.stream, manifest.sync_id
    table = record.table
    has_cdc = CDC_DELETED in latest.column_names
    if table is None or not set(keys) <= {f.name for f in table.schema().fields}:
        # first batch (or the table only has the Airbyte columns of empty batches, so no row can match): the
        # latest non-deleted records are appended
        rows = latest.filter(pc.is_null(latest.column(CDC_DELETED))) if has_cdc else latest
        tables.append(record.target(uri), rows, commit)
        return SilverResult(
            source, stream, sync_id, uri, True, rows_in, inserted=rows.num_rows, version=tables.version(uri)
        )
    rewritten = rewrite_merge(tables.silver, silver_table_key(source, stream), table, latest, keys, cursor, commit)
    if rewritten is not None:  # the changed files rewritten with Arrow, one commit (see ``rewrite``)
        return SilverResult(
            source,
            stream,
            sync_id,
            uri,
            True,
            rows_in,
            inserted=rewritten.inserted,
            updated=rewritten.updated,
            deleted=rewritten.deleted,
            version=tables.version(uri),
        )
    # a table or batch the rewrite leaves to delta-rs (table features, schema evolution)
    is_newer = newer("s", "t", cursor)
    is_delete = f"s.{CDC_DELETED} IS NOT NULL" if has_cdc else "FALSE"
    merger = table.merge(
        latest,
        " AND ".join([f"t.{k} = s.{k}" for k in keys] + _key_ranges(latest, keys)),
        source_alias="s",
        target_alias="t",
        merge_schema=True,
        commit_properties=commit,
    )
    if has_cdc:
        merger = merger.when_matched_delete(predicate=f"{is_delete} AND ({is_newer})")
    merger = merger.when_matched_update_all(predicate=f"NOT ({is_delete}) AND ({is_newer})")
    before = table.version()
    metrics = merger.when_not_matched_insert_all(predicate=f"NOT ({is_delete})").execute()
    if tables.version(uri) == before:  # nothing changed, so delta-rs made no commit: record the sync id anyway
        tables.append(table, latest.slice(0, 0), commit)
    return SilverResult(
        source,
        stream,
        sync_id,
        uri,
        True,
        rows_in,
        inserted=int(metrics.get("num_target_rows_inserted", 0)),
        updated=int(metrics.get("num_target_rows_updated", 0)),
        deleted=int(metrics.get("num_target_rows_deleted", 0)),
        version=tables.version(uri),
    )


def _key_ranges(latest: pa.Table, keys: list[str]) -> list[str]:
    """SQL conjuncts ``t.k >= min AND t.k <= max`` of the batch's integer and string keys.

    They change nothing in what matches (a matching row has the same key), but delta-rs uses them with the
    files' statistics to skip every file outside the batch's key range: a batch of new or recent keys then reads
    and rewrites only the files holding those keys. (Not streaming the source, ``streamed_exec=False``, lets
    delta-rs derive a filter itself, but for a batch of 1M rows that was slower than scanning everything.)
    """
    conjuncts = []
    for key in keys:
        column = latest.column(key)
        if not (pa.types.is_integer(column.type) or pa.types.is_string(column.type)) or column.null_count == len(
            column
        ):
            continue
        low, high = (v.as_py() for v in pc.min_max(column).values())
        if isinstance(low, str) and isinstance(high, str):
            low, high = "'" + low.replace("'", "''") + "'", "'" + high.replace("'", "''") + "'"
        conjuncts.append(f"t.{key} >= {low} AND t.{key} <= {high}")
    return conjuncts
