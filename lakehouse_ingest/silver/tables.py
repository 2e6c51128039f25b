"""The silver root as Delta tables: where each stream's table and tombstones live, opening and writing them,
and the storage options delta-rs needs to reach an S3 root.

Locations come from ``lake.keys`` (``<source>/<stream>`` and ``_tombstones/<source>/<stream>``); every Delta
read and write of silver goes through ``SilverTables.options``.

Every write is conflict-checked (``write``): to a table it goes through the ``DeltaTable`` as read (so a commit
made by another writer since then conflicts, given a transaction both commits set); a table that does not exist
yet is created by the write's own commit, as version 0 or not at all. (delta-rs retries a lost version 0 as an
append on top of the winner, with no conflict check: two first batches would both land. With no retry, the loser
fails, and so does a writer that finds the table created since it looked.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lakehouse_ingest.errors import CommitConflict
from lakehouse_ingest.lake.keys import silver_table_key, tombstone_table_key
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.silver.record import AppliedBatch, BatchRecord


class SilverTables:
    """The silver root: Delta table locations and the storage options delta-rs needs for them."""

    def __init__(self, silver: LakeStorage) -> None:
        self.silver = silver
        self.options = silver.delta_options()

    def table_uri(self, source: str, stream: str) -> str:
        """``<silver>/<source>/<stream>``."""
        return self.silver.url_for(silver_table_key(source, stream))

    def tombstone_uri(self, source: str, stream: str) -> str:
        """``<silver>/_tombstones/<source>/<stream>``."""
        return self.silver.url_for(tombstone_table_key(source, stream))

    def open(self, uri: str) -> DeltaTable | None:
        """The Delta table at ``uri``, or None before its first commit."""
        try:
            return DeltaTable(uri, storage_options=self.options)
        except TableNotFoundError:
            return None

    def version(self, uri: str) -> int | None:
        """The current version of the table at ``uri`` (read again: after a commit, the one it made)."""
        table = self.open(uri)
        return table.version() if table is not None else None

    def append(self, target: DeltaTable | str, rows: pa.Table, commit: CommitProperties) -> None:
        """Append ``rows`` (new columns evolve the schema) in one commit carrying ``commit``'s record."""
        self.write(target, rows, commit)

    def write(
        self,
        target: DeltaTable | str,
        data: Any,
        commit: CommitProperties,
        mode: Literal["append", "overwrite"] = "append",
        schema_mode: Literal["merge", "overwrite"] = "merge",
    ) -> None:
        """One commit of ``data`` (a table or a record batch reader) carrying ``commit``'s transactions.

        ``target`` is the table as read (a commit another writer made since conflicts with this one if both set
        a transaction with the same app id), or the uri of a table that did not exist when it was read: this
        commit then creates it, as version 0, or raises ``CommitConflict`` when another writer created it first
        (re-reading the table then finds what that writer did)."""
        if isinstance(target, DeltaTable):
            write_deltalake(
                target, data, mode=mode, schema_mode=schema_mode, storage_options=self.options, commit_properties=commit
            )
            return
        try:
            write_deltalake(
                target,
                data,
                mode="error",  # a table found there now was created since the caller looked: lost
                storage_options=self.options,
                commit_properties=CommitProperties(
                    custom_metadata=commit.custom_metadata,
                    app_transactions=commit.app_transactions,
                    max_commit_retries=0,  # a lost version 0 fails instead of landing on top of the winner
                ),
            )
        except DeltaError as exc:
            if self.open(target) is None:
                raise
            raise CommitConflict(
                f"{target}: another writer created the table first ({str(exc).splitlines()[0][:200]})"
            ) from exc

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
