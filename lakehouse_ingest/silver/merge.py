"""Silver: one Delta Lake table per stream, merged from validated bronze batches exactly once.

- Input is a manifest (the handoff contract), never a listing: its files are read, and the batch is reduced to
  the latest record per primary key (by the stream's top-level cursor, then ``_airbyte_extracted_at``).
- Merge by primary key: a row is updated only by a *newer* record, so batches commute and a late batch can
  never overwrite newer data. A CDC delete (``_ab_cdc_deleted_at`` set) removes the row; its key and version
  are kept in a tombstone table (``_tombstones/<source>/<stream>``) so that an older insert arriving later
  cannot bring the row back. Streams without a primary key are appended.
- Exactly once: every commit carries Delta application transactions (``txn`` actions, part of the table state,
  so they survive checkpoints and log cleanup, unlike the commit history): ``lakehouse.sync.<sync_id>`` for the
  batch (its generation and outcome) and ``lakehouse.snapshot`` (the newest applied full-refresh snapshot). A
  manifest whose sync id has one is skipped. Every commit rewrites ``lakehouse.snapshot``, so two concurrent
  commits to one table conflict and the loser fails instead of acting on a stale record. A table written before
  this record existed is read from its commit history (``lakehouse.sync_id`` etc. in the commit info, which the
  commits still carry) until its next commit copies that history into transactions. A Delta commit is atomic,
  so a crash leaves the previous version intact and a re-run applies the batch again. New columns evolve the
  table schema.
- Full refresh (``destination_sync_mode`` ``overwrite``): the batch is a complete snapshot. Batches are ordered
  by ``(generation_id, sync_id)``; the table is always what applying the batches received so far in that order
  gives, starting from the newest snapshot among them. So an overwrite replaces the whole table (and the
  stream's tombstones) in one commit, with its snapshot deduplicated and merged with any batch *after* it that
  was applied before it (read again from bronze); a batch older than the newest applied snapshot (an older
  generation, or the same generation and an earlier sync) is stale: it is skipped, and the skip is committed
  with its sync id and the reason so it is never pending again and never brings back replaced rows.
- Rows keep every bronze column, so ``_airbyte_meta.sync_id``, ``_airbyte_raw_id`` and
  ``_airbyte_extracted_at`` are the lineage of each silver row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_FIELDS
from lakehouse_ingest.errors import ValidationFailed
from lakehouse_ingest.lake.keys import manifest_key, stream_prefix
from lakehouse_ingest.lake.names import safe_stream_dir, validate_source_name
from lakehouse_ingest.lake.s3 import S3Storage
from lakehouse_ingest.lake.storage import LakeStorage

SYNC_ID_METADATA = "lakehouse.sync_id"
GENERATION_METADATA = "lakehouse.generation_id"
MODE_METADATA = "lakehouse.mode"  # overwrite | incremental | skipped
SKIPPED_METADATA = "lakehouse.skipped"
SYNC_APP_ID = "lakehouse.sync."  # + sync id; txn version: generation * 4 + outcome
SNAPSHOT_APP_ID = "lakehouse.snapshot"  # txn version: 1 + sync id of the newest applied snapshot, 0 for none
OUTCOMES = {"incremental": 1, "overwrite": 2, "skipped": 3}  # of a batch (its txn version, mod 4)
OVERWRITE_MODES = frozenset({"overwrite", "overwrite_dedup", "overwrite_deduped"})
CDC_DELETED = "_ab_cdc_deleted_at"
EXTRACTED = "_airbyte_extracted_at"


@dataclass(frozen=True)
class SilverResult:
    """What applying one manifest did."""

    source: str
    stream: str
    sync_id: int
    table: str
    applied: bool
    rows_in: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    version: int | None = None
    skipped: str | None = None  # why a batch that was not applied before was not applied now (stale)


@dataclass(frozen=True, order=True)
class AppliedBatch:
    """One batch recorded in a silver table's history (ordered by generation, then sync id)."""

    generation_id: int
    sync_id: int
    overwrite: bool = False
    skipped: bool = False


class SilverTables:
    """The silver root: Delta table locations and the storage options delta-rs needs for them."""

    def __init__(self, silver: LakeStorage) -> None:
        self.silver = silver
        self.options = _delta_options(silver)

    def table_uri(self, source: str, stream: str) -> str:
        """``<silver>/<source>/<stream>``."""
        return self.silver.url_for(f"{validate_source_name(source)}/{safe_stream_dir(stream)}")

    def tombstone_uri(self, source: str, stream: str) -> str:
        """``<silver>/_tombstones/<source>/<stream>``."""
        return self.silver.url_for(f"_tombstones/{validate_source_name(source)}/{safe_stream_dir(stream)}")

    def open(self, uri: str) -> DeltaTable | None:
        """The Delta table at ``uri``, or None before its first commit."""
        try:
            return DeltaTable(uri, storage_options=self.options)
        except TableNotFoundError:
            return None

    def record(self, source: str, stream: str) -> BatchRecord:
        """The exactly-once record of the stream's table, as of now."""
        return BatchRecord(self.open(self.table_uri(source, stream)))

    def applied_sync_ids(self, source: str, stream: str, candidates: Iterable[int] | None = None) -> set[int]:
        """Sync ids of the batches already merged into (or deliberately skipped by) the stream's table.

        With ``candidates`` (e.g. the sync ids of the manifests in bronze): exactly those of them that were
        applied, one transaction lookup each. Without: the ones still in the table's commit history; batches
        whose commits the log cleanup removed are missing, so callers deciding what is pending pass candidates.
        """
        return set(self.record(source, stream).batches(candidates))

    def applied_batches(
        self, source: str, stream: str, candidates: Iterable[int] | None = None
    ) -> dict[int, AppliedBatch]:
        """The batches applied to the stream's table, by sync id (see ``applied_sync_ids`` for ``candidates``;
        commits before generations were recorded count as generation 0, incremental)."""
        return self.record(source, stream).batches(candidates)


class BatchRecord:
    """Which batches a stream's table holds, and its newest full-refresh snapshot.

    Read from the table's application transactions (``txn`` actions: table state, kept by checkpoints and never
    expired, since they carry no ``lastUpdated``); Delta only offers point lookups of them. A table without
    ``lakehouse.snapshot`` was written before this record: its commit history is read instead, and the next
    commit copies it into transactions (``transactions``).
    """

    def __init__(self, table: DeltaTable | None) -> None:
        self.table = table
        self.legacy: dict[int, AppliedBatch] | None = None
        if table is not None and table.transaction_version(SNAPSHOT_APP_ID) is None:
            self.legacy = _history_batches(table)

    def get(self, sync_id: int) -> AppliedBatch | None:
        """The batch ``sync_id`` as applied (or skipped), or None if it is pending."""
        if self.table is None:
            return None
        if self.legacy is not None:
            return self.legacy.get(sync_id)
        version = self.table.transaction_version(f"{SYNC_APP_ID}{sync_id}")
        return None if version is None else _decode(sync_id, version)

    def batches(self, candidates: Iterable[int] | None = None) -> dict[int, AppliedBatch]:
        """The applied batches among ``candidates`` (default: the sync ids in the commit history)."""
        if self.table is None:
            return {}
        if self.legacy is not None:
            known = self.legacy
            return dict(known) if candidates is None else {i: known[i] for i in candidates if i in known}
        ids = _history_batches(self.table) if candidates is None else candidates
        found = {sync_id: self.get(sync_id) for sync_id in ids}
        return {sync_id: batch for sync_id, batch in found.items() if batch is not None}

    def snapshot(self) -> AppliedBatch | None:
        """The newest full-refresh snapshot applied to the table."""
        if self.table is None:
            return None
        if self.legacy is not None:
            return max((b for b in self.legacy.values() if b.overwrite and not b.skipped), default=None)
        pointer = self.table.transaction_version(SNAPSHOT_APP_ID) or 0
        return self.get(pointer - 1) if pointer > 0 else None

    def transactions(self, this: AppliedBatch, mode: str) -> list[Transaction]:
        """The application transactions of the commit that applies (``mode``) the batch ``this``."""
        snapshot = this if mode == "overwrite" else self.snapshot()
        transactions = [
            Transaction(f"{SYNC_APP_ID}{this.sync_id}", _encode(this.generation_id, mode)),
            Transaction(SNAPSHOT_APP_ID, snapshot.sync_id + 1 if snapshot is not None else 0),
        ]
        for batch in (self.legacy or {}).values():  # a table from before the record: carry its history over
            if batch.sync_id != this.sync_id:
                outcome = "skipped" if batch.skipped else "overwrite" if batch.overwrite else "incremental"
                transactions.append(Transaction(f"{SYNC_APP_ID}{batch.sync_id}", _encode(batch.generation_id, outcome)))
        return transactions


def _encode(generation_id: int, mode: str) -> int:
    """A batch's transaction version: its generation and outcome (``generation * 4 + OUTCOMES[mode]``)."""
    if generation_id < 0:
        raise ValidationFailed(f"generation_id {generation_id} is negative")
    return generation_id * 4 + OUTCOMES[mode]


def _decode(sync_id: int, version: int) -> AppliedBatch:
    generation, outcome = divmod(version, 4)
    return AppliedBatch(
        generation, sync_id, overwrite=outcome == OUTCOMES["overwrite"], skipped=outcome == OUTCOMES["skipped"]
    )


def _history_batches(table: DeltaTable) -> dict[int, AppliedBatch]:
    """The batches named in the commit history (what remains of it after log cleanup)."""
    found = {}
    for commit in table.history():
        if SYNC_ID_METADATA in commit:
            sync_id = int(commit[SYNC_ID_METADATA])
            found[sync_id] = AppliedBatch(
                int(commit.get(GENERATION_METADATA, 0)),
                sync_id,
                overwrite=commit.get(MODE_METADATA) == "overwrite",
                skipped=commit.get(MODE_METADATA) == "skipped",
            )
    return found


def load_manifest(bronze: LakeStorage, source: str, stream: str, sync_id: int) -> dict[str, Any]:
    """The manifest of one handed-off batch."""
    manifest: dict[str, Any] = json.loads(bronze.get_bytes(manifest_key(source, stream, sync_id)))
    return manifest


def read_batch(bronze: LakeStorage, manifest: dict[str, Any]) -> pa.Table:
    """The rows of the batch's files, exactly the files the manifest lists, checked against its counts."""
    tables = []
    for item in manifest["files"]:
        table = bronze.open_parquet(item["key"]).read()
        if table.num_rows != item["rows"]:
            raise ValidationFailed(
                f"{manifest['source']}.{manifest['stream']}: {item['key']} holds {table.num_rows} rows, "
                f"its manifest says {item['rows']}"
            )
        tables.append(table)
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def latest_per_key(table: pa.Table, keys: list[str], cursor: str | None) -> pa.Table:
    """One row per key: the newest by ``cursor`` (when there is one) and then ``_airbyte_extracted_at``.

    The result is sorted by key (inserted rows then land in files with narrow key ranges, which later merges
    can skip). Only the key and version columns are sorted; the payload of the winners alone is gathered.
    """
    if table.num_rows == 0:
        return table
    versions = [c for c in (cursor, EXTRACTED) if c and c in table.column_names]
    order = [(k, "ascending") for k in keys] + [(c, "descending") for c in versions]
    indices = pc.sort_indices(table.select(keys + versions), sort_keys=order)
    first = pa.array([True] + [False] * (len(indices) - 1))
    for key in keys:
        column = table.column(key).take(indices).combine_chunks()
        changed = pc.not_equal(column.slice(1), column.slice(0, len(column) - 1))
        first = pc.or_(first, pa.concat_arrays([pa.array([True]), pc.fill_null(changed, True)]))
    return table.take(indices.filter(first))


def is_overwrite(manifest: dict[str, Any]) -> bool:
    """The batch is a full-refresh snapshot (Airbyte ``overwrite`` / ``overwrite_dedup``)."""
    return str(manifest.get("destination_sync_mode") or "").lower() in OVERWRITE_MODES


def apply_manifest(bronze: LakeStorage, tables: SilverTables, manifest: dict[str, Any]) -> SilverResult:
    """Merge one validated batch into its silver table, unless it was applied (or skipped as stale) before."""
    source, stream, sync_id = manifest["source"], manifest["stream"], int(manifest["sync_id"])
    this = AppliedBatch(int(manifest.get("generation_id") or 0), sync_id, overwrite=is_overwrite(manifest))
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
        candidates = _manifest_sync_ids(bronze, source, stream) - {sync_id}
        later = sorted(b for b in record.batches(candidates).values() if not b.skipped and b > this)
        return _overwrite(bronze, tables, record, uri, manifest, this, later)
    batch = read_batch(bronze, manifest)
    commit = _commit_properties(manifest, this, "incremental", record)
    keys = _keys(manifest)
    if not keys or batch.num_rows == 0:
        return _append(tables, record, uri, batch, manifest, commit)
    cursor = _cursor(manifest, batch)
    latest = latest_per_key(batch, keys, cursor)
    latest = _drop_tombstoned(tables, source, stream, latest, keys, cursor)
    _record_tombstones(tables, source, stream, latest, keys, cursor, _commit_properties(manifest, this, "incremental"))
    return _merge(tables, record, uri, latest, keys, cursor, manifest, commit, batch.num_rows)


def _manifest_sync_ids(bronze: LakeStorage, source: str, stream: str) -> set[int]:
    """The sync ids of the stream's manifests in bronze."""
    names = (obj.key.rsplit("/", 1)[-1] for obj in bronze.list(f"{stream_prefix(source, stream)}/_manifests"))
    return {int(name[: -len(".json")]) for name in names if name.endswith(".json") and name[: -len(".json")].isdigit()}


def _append_rows(tables: SilverTables, target: DeltaTable | str, rows: pa.Table, commit: CommitProperties) -> None:
    """Append ``rows`` (new columns evolve the schema) in one commit carrying ``commit``'s record."""
    write_deltalake(
        target, rows, mode="append", schema_mode="merge", storage_options=tables.options, commit_properties=commit
    )


def _target(record: BatchRecord, uri: str) -> DeltaTable | str:
    """Where a commit goes: the table as read with the record (so a concurrent commit conflicts), or its uri."""
    return record.table if record.table is not None else uri


def _keys(manifest: dict[str, Any]) -> list[str]:
    return [path[0] for path in manifest.get("primary_key") or [] if len(path) == 1]


def _cursor(manifest: dict[str, Any], batch: pa.Table) -> str | None:
    cursor_field = manifest.get("cursor_field") or []
    return cursor_field[0] if len(cursor_field) == 1 and cursor_field[0] in batch.column_names else None


def _commit_properties(
    manifest: dict[str, Any], this: AppliedBatch, mode: str, record: BatchRecord | None = None, **extra: str
) -> CommitProperties:
    """The batch in the commit info (lineage) and as application transactions (the record): those of ``record``
    for the stream's table, the batch's own alone for its tombstones (informational: never read, so a crash
    between the tombstones and the table is repaired by the re-run)."""
    own = [Transaction(f"{SYNC_APP_ID}{this.sync_id}", _encode(this.generation_id, mode))]
    return CommitProperties(
        app_transactions=record.transactions(this, mode) if record is not None else own,
        custom_metadata={
            SYNC_ID_METADATA: str(this.sync_id),
            GENERATION_METADATA: str(this.generation_id),
            MODE_METADATA: mode,
            "lakehouse.source": manifest["source"],
            "lakehouse.stream": manifest["stream"],
            **extra,
        },
    )


def _skip(
    tables: SilverTables, record: BatchRecord, uri: str, manifest: dict[str, Any], this: AppliedBatch, reason: str
) -> SilverResult:
    """Commit no rows, only the stale batch's sync id and why it was skipped (so it is never pending again)."""
    commit = _commit_properties(manifest, this, "skipped", record, **{SKIPPED_METADATA: reason})
    _append_rows(tables, _target(record, uri), pa.schema(list(AIRBYTE_FIELDS)).empty_table(), commit)
    return SilverResult(
        manifest["source"],
        manifest["stream"],
        this.sync_id,
        uri,
        applied=False,
        rows_in=int(manifest.get("rows") or 0),
        version=_version(tables, uri),
        skipped=reason,
    )


def _overwrite(
    bronze: LakeStorage,
    tables: SilverTables,
    record: BatchRecord,
    uri: str,
    manifest: dict[str, Any],
    this: AppliedBatch,
    later: list[AppliedBatch],
) -> SilverResult:
    """Replace the table with the snapshot (plus the batches after it that arrived first), in one commit.

    Memory stays bounded by one file: the newest row per key is chosen from the key and version columns alone,
    then the files are streamed into the commit one at a time, each reduced to its winning rows. The stream's
    tombstones are replaced first by the deletes of that same set of batches: a crash between the two commits
    leaves the old table and the new tombstones, and re-running the batch converges.
    """
    source, stream = manifest["source"], manifest["stream"]
    manifests = [manifest] + [load_manifest(bronze, source, stream, b.sync_id) for b in later]
    files = [(m, item) for m in manifests for item in m["files"]]
    schemas = [bronze.open_parquet(item["key"]).schema_arrow for _, item in files]
    schema = _common_schema(schemas)
    keys = _keys(manifest)
    tombstone_commit = _commit_properties(manifest, this, "overwrite")
    if keys and files:
        cursor = _cursor(manifest, schema.empty_table())
        slim = _slim_rows(bronze, files, schemas, keys + _version_columns(cursor) + [CDC_DELETED])
        winners = latest_per_key(slim, keys, cursor)
        deletes = None
        if CDC_DELETED in winners.column_names:
            deleted = pc.is_valid(winners.column(CDC_DELETED))
            deletes = winners.filter(deleted).select(keys + _version_columns(cursor))
            winners = winners.filter(pc.invert(deleted))
        winners = winners.select(["__file", "__row"]).sort_by([("__file", "ascending"), ("__row", "ascending")])
        counts = {int(c["values"]): int(c["counts"]) for c in pc.value_counts(winners.column("__file")).to_pylist()}
        rows, offset = winners.column("__row").combine_chunks(), 0
        selected: list[pa.Array | None] = []
        for index in range(len(files)):  # the winners of each file, in file order
            selected.append(rows.slice(offset, counts.get(index, 0)))
            offset += counts.get(index, 0)
        _reset_tombstones(tables, source, stream, deletes, tombstone_commit)
    else:
        for owner, item in files:
            _check_rows(owner, item, bronze.open_parquet(item["key"]).metadata.num_rows)
        selected = [None] * len(files)
        _reset_tombstones(tables, source, stream, None, tombstone_commit)
    inserted = sum(len(s) if s is not None else int(item["rows"]) for s, (_, item) in zip(selected, files, strict=True))

    def batches() -> Iterator[pa.RecordBatch]:
        for (_, item), rows_of_file in zip(files, selected, strict=True):
            if rows_of_file is not None and len(rows_of_file) == 0:
                continue
            table = bronze.open_parquet(item["key"]).read()
            if rows_of_file is not None:
                table = table.take(rows_of_file)
            yield from _conform(table, schema).to_batches()

    replaced = record.table.count() if record.table is not None else 0
    later_ids = ",".join(str(b.sync_id) for b in later)
    extra = {"lakehouse.reapplied_sync_ids": later_ids} if later_ids else {}
    write_deltalake(
        _target(record, uri),
        pa.RecordBatchReader.from_batches(schema, batches()),
        mode="overwrite",
        schema_mode="merge",
        storage_options=tables.options,
        commit_properties=_commit_properties(manifest, this, "overwrite", record, **extra),
    )
    return SilverResult(
        source,
        stream,
        this.sync_id,
        uri,
        True,
        int(sum(int(item["rows"]) for item in manifest["files"])),
        inserted=inserted,
        deleted=replaced,
        version=_version(tables, uri),
    )


def _check_rows(manifest: dict[str, Any], item: dict[str, Any], found: int) -> None:
    if found != item["rows"]:
        raise ValidationFailed(
            f"{manifest['source']}.{manifest['stream']}: {item['key']} holds {found} rows, "
            f"its manifest says {item['rows']}"
        )


def _common_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for the files of a set of batches (types promoted; a column some files lack is nullable)."""
    if not schemas:
        return pa.schema(list(AIRBYTE_FIELDS))
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    everywhere = set.intersection(*(set(s.names) for s in schemas))
    return pa.schema([f if f.name in everywhere else f.with_nullable(True) for f in unified])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (missing ones null, types cast)."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _slim_rows(
    bronze: LakeStorage,
    files: list[tuple[dict[str, Any], dict[str, Any]]],
    schemas: list[pa.Schema],
    wanted: list[str],
) -> pa.Table:
    """Keys, versions and the CDC column of every file's rows, with ``__file`` and ``__row`` (their position)."""
    parts = []
    for index, ((owner, item), file_schema) in enumerate(zip(files, schemas, strict=True)):
        columns = [c for c in dict.fromkeys(wanted) if c in file_schema.names]
        part = bronze.open_parquet(item["key"]).read(columns=columns)
        _check_rows(owner, item, part.num_rows)
        part = part.append_column("__file", pa.repeat(pa.scalar(index, pa.int32()), part.num_rows))
        parts.append(part.append_column("__row", pa.array(range(part.num_rows), pa.int64())))
    return pa.concat_tables(parts, promote_options="permissive")


def _reset_tombstones(
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


def _append(
    tables: SilverTables,
    record: BatchRecord,
    uri: str,
    batch: pa.Table,
    manifest: dict[str, Any],
    commit: CommitProperties,
) -> SilverResult:
    source, stream, sync_id = manifest["source"], manifest["stream"], int(manifest["sync_id"])
    if batch.num_rows == 0 and record.table is None:
        batch = pa.schema(list(AIRBYTE_FIELDS)).empty_table()  # a zero-row first batch still creates the table
    _append_rows(tables, _target(record, uri), batch, commit)
    return SilverResult(
        source, stream, sync_id, uri, True, batch.num_rows, inserted=batch.num_rows, version=_version(tables, uri)
    )


def _merge(
    tables: SilverTables,
    record: BatchRecord,
    uri: str,
    latest: pa.Table,
    keys: list[str],
    cursor: str | None,
    manifest: dict[str, Any],
    commit: CommitProperties,
    rows_in: int,
) -> SilverResult:
    source, stream, sync_id = manifest["source"], manifest["stream"], int(manifest["sync_id"])
    table = record.table
    has_cdc = CDC_DELETED in latest.column_names
    if table is None or not set(keys) <= {f.name for f in table.schema().fields}:
        # first batch (or the table only has the Airbyte columns of empty batches, so no row can match): the
        # latest non-deleted records are appended
        rows = latest.filter(pc.is_null(latest.column(CDC_DELETED))) if has_cdc else latest
        _append_rows(tables, _target(record, uri), rows, commit)
        return SilverResult(
            source, stream, sync_id, uri, True, rows_in, inserted=rows.num_rows, version=_version(tables, uri)
        )
    newer = _newer("s", "t", cursor)
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
        merger = merger.when_matched_delete(predicate=f"{is_delete} AND ({newer})")
    merger = merger.when_matched_update_all(predicate=f"NOT ({is_delete}) AND ({newer})")
    before = table.version()
    metrics = merger.when_not_matched_insert_all(predicate=f"NOT ({is_delete})").execute()
    if _version(tables, uri) == before:  # nothing changed, so delta-rs made no commit: record the sync id anyway
        _append_rows(tables, table, latest.slice(0, 0), commit)
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
        version=_version(tables, uri),
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


def _version(tables: SilverTables, uri: str) -> int | None:
    table = tables.open(uri)
    return table.version() if table is not None else None


def _newer(new: str, old: str, cursor: str | None) -> str:
    """SQL: the ``new`` row is strictly newer than the ``old`` one (cursor, then extraction time)."""
    by_extraction = f"{new}.{EXTRACTED} > {old}.{EXTRACTED}"
    if cursor is None:
        return by_extraction
    return (
        f"({new}.{cursor} > {old}.{cursor}) OR ({old}.{cursor} IS NULL AND {new}.{cursor} IS NOT NULL) OR "
        f"(({new}.{cursor} = {old}.{cursor} OR ({new}.{cursor} IS NULL AND {old}.{cursor} IS NULL)) "
        f"AND {by_extraction})"
    )


def _version_columns(cursor: str | None) -> list[str]:
    return [c for c in (cursor, EXTRACTED) if c]


def _drop_tombstoned(
    tables: SilverTables, source: str, stream: str, latest: pa.Table, keys: list[str], cursor: str | None
) -> pa.Table:
    """Drop records that an already-applied, newer delete supersedes (a late, older insert or update)."""
    tombstones = tables.open(tables.tombstone_uri(source, stream))
    if tombstones is None:
        return latest
    known = tombstones.to_pyarrow_table()
    if known.num_rows == 0:
        return latest
    versions = _version_columns(cursor)
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


def _record_tombstones(
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
    deletes = latest.filter(pc.is_valid(latest.column(CDC_DELETED))).select(keys + _version_columns(cursor))
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
        .when_matched_update_all(predicate=_newer("s", "t", cursor))
        .when_not_matched_insert_all()
        .execute()
    )


def _delta_options(storage: LakeStorage) -> dict[str, str]:
    """delta-rs storage options for an S3 root (endpoint, keys, plain HTTP for MinIO on a LAN)."""
    if not isinstance(storage, S3Storage):
        return {}
    settings = storage.settings
    options = {"AWS_REGION": settings.region}
    if settings.endpoint_url:
        options["AWS_ENDPOINT_URL"] = settings.endpoint_url
        if urlsplit(settings.endpoint_url).scheme == "http":
            options["AWS_ALLOW_HTTP"] = "true"
    if settings.access_key and settings.secret_key:
        options["AWS_ACCESS_KEY_ID"] = settings.access_key
        options["AWS_SECRET_ACCESS_KEY"] = settings.secret_key
    return options
