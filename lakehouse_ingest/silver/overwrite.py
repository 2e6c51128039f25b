"""Full refresh: a snapshot batch replaces the whole table (and the stream's tombstones) in one commit.

Batches are ordered by ``(generation_id, sync_id)``; the table is always what applying the batches received so
far in that order gives, starting from the newest snapshot among them. So the snapshot is deduplicated and
merged with any batch *after* it that was applied before it (read again from bronze, through their manifests).
``merge.apply_manifest`` decides that a batch is such a snapshot and which applied batches come after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_FIELDS
from lakehouse_ingest.bronze.manifest import load_manifest
from lakehouse_ingest.lake.documents import Manifest, ManifestFile
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.silver.bronze_files import check_rows
from lakehouse_ingest.silver.dedup import cursor_column, latest_per_key, primary_key_columns, version_columns
from lakehouse_ingest.silver.record import AppliedBatch, BatchRecord, commit_properties
from lakehouse_ingest.silver.result import SilverResult
from lakehouse_ingest.silver.tables import SilverTables
from lakehouse_ingest.silver.tombstones import CDC_DELETED, reset_tombstones


def overwrite_snapshot(
    bronze: LakeStorage,
    tables: SilverTables,
    record: BatchRecord,
    uri: str,
    manifest: Manifest,
    this: AppliedBatch,
    later: list[AppliedBatch],
) -> SilverResult:
    """Replace the table with the snapshot (plus the batches after it that arrived first), in one commit.

    Memory stays bounded by one file: the newest row per key is chosen from the key and version columns alone,
    then the files are streamed into the commit one at a time, each reduced to its winning rows. The stream's
    tombstones are replaced first by the deletes of that same set of batches: a crash between the two commits
    leaves the old table and the new tombstones, and re-running the batch converges.
    """
    source, stream = manifest.source, manifest.stream
    manifests = [manifest] + [load_manifest(bronze, source, stream, b.sync_id) for b in later]
    files = [(m, item) for m in manifests for item in m.files]
    schemas = [bronze.open_parquet(item.key).schema_arrow for _, item in files]
    schema = _common_schema(schemas)
    keys = primary_key_columns(manifest)
    tombstone_commit = commit_properties(manifest, this, "overwrite")
    if keys and files:
        cursor = cursor_column(manifest, schema.empty_table())
        slim = _slim_rows(bronze, files, schemas, keys + version_columns(cursor) + [CDC_DELETED])
        winners = latest_per_key(slim, keys, cursor)
        deletes = None
        if CDC_DELETED in winners.column_names:
            deleted = pc.is_valid(winners.column(CDC_DELETED))
            deletes = winners.filter(deleted).select(keys + version_columns(cursor))
            winners = winners.filter(pc.invert(deleted))
        winners = winners.select(["__file", "__row"]).sort_by([("__file", "ascending"), ("__row", "ascending")])
        counts = {int(c["values"]): int(c["counts"]) for c in pc.value_counts(winners.column("__file")).to_pylist()}
        rows, offset = winners.column("__row").combine_chunks(), 0
        selected: list[pa.Array | None] = []
        for index in range(len(files)):  # the winners of each file, in file order
            selected.append(rows.slice(offset, counts.get(index, 0)))
            offset += counts.get(index, 0)
        reset_tombstones(tables, source, stream, deletes, this, tombstone_commit)
    else:
        for owner, item in files:
            check_rows(owner, item, bronze.open_parquet(item.key).metadata.num_rows)
        selected = [None] * len(files)
        reset_tombstones(tables, source, stream, None, this, tombstone_commit)
    inserted = sum(len(s) if s is not None else item.rows for s, (_, item) in zip(selected, files, strict=True))

    def batches() -> Iterator[pa.RecordBatch]:
        for (_, item), rows_of_file in zip(files, selected, strict=True):
            if rows_of_file is not None and len(rows_of_file) == 0:
                continue
            table = bronze.open_parquet(item.key).read()
            if rows_of_file is not None:
                table = table.take(rows_of_file)
            yield from _conform(table, schema).to_batches()

    replaced = record.table.count() if record.table is not None else 0
    later_ids = ",".join(str(b.sync_id) for b in later)
    extra = {"lakehouse.reapplied_sync_ids": later_ids} if later_ids else {}
    tables.write(
        record.target(uri),
        pa.RecordBatchReader.from_batches(schema, batches()),
        commit_properties(manifest, this, "overwrite", record, **extra),
        mode="overwrite",
    )
    return SilverResult(
        source,
        stream,
        this.sync_id,
        uri,
        True,
        sum(item.rows for item in manifest.files),
        inserted=inserted,
        deleted=replaced,
        version=tables.version(uri),
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
    files: list[tuple[Manifest, ManifestFile]],
    schemas: list[pa.Schema],
    wanted: list[str],
) -> pa.Table:
    """Keys, versions and the CDC column of every file's rows, with ``__file`` and ``__row`` (their position)."""
    parts = []
    for index, ((owner, item), file_schema) in enumerate(zip(files, schemas, strict=True)):
        columns = [c for c in dict.fromkeys(wanted) if c in file_schema.names]
        part = bronze.open_parquet(item.key).read(columns=columns)
        check_rows(owner, item, part.num_rows)
        part = part.append_column("__file", pa.repeat(pa.scalar(index, pa.int32()), part.num_rows))
        parts.append(part.append_column("__row", pa.array(range(part.num_rows), pa.int64())))
    return pa.concat_tables(parts, promote_options="permissive")
