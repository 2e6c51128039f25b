"""The exactly-once record of a silver table: which batches it holds, and its newest full-refresh snapshot.

Every commit carries Delta application transactions (``txn`` actions, part of the table state, so they survive
checkpoints and log cleanup, unlike the commit history): ``lakehouse.sync.<sync_id>`` for the batch (its
generation and outcome) and ``lakehouse.snapshot`` (the newest applied full-refresh snapshot). A manifest whose
sync id has one is skipped. Every commit rewrites ``lakehouse.snapshot``, so two concurrent commits to one table
conflict and the loser fails instead of acting on a stale record. A table written before this record existed is
read from its commit history (``lakehouse.sync_id`` etc. in the commit info, which the commits still carry) until
its next commit copies that history into transactions.

Here: the encoding of a batch in a transaction version, reading the record (``BatchRecord``), and the commit
properties that write it with every commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from deltalake import CommitProperties, DeltaTable, Transaction

from lakehouse_ingest.errors import ValidationFailed
from lakehouse_ingest.lake.documents import Manifest

SYNC_ID_METADATA = "lakehouse.sync_id"
GENERATION_METADATA = "lakehouse.generation_id"
MODE_METADATA = "lakehouse.mode"  # overwrite | incremental | skipped
SKIPPED_METADATA = "lakehouse.skipped"
SYNC_APP_ID = "lakehouse.sync."  # + sync id; txn version: generation * 4 + outcome
SNAPSHOT_APP_ID = "lakehouse.snapshot"  # txn version: 1 + sync id of the newest applied snapshot, 0 for none
OUTCOMES = {"incremental": 1, "overwrite": 2, "skipped": 3}  # of a batch (its txn version, mod 4)


@dataclass(frozen=True, order=True)
class AppliedBatch:
    """One batch recorded in a silver table's history (ordered by generation, then sync id)."""

    generation_id: int
    sync_id: int
    overwrite: bool = False
    skipped: bool = False


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

    def target(self, uri: str) -> DeltaTable | str:
        """Where a commit goes: the table as read with the record (so a concurrent commit conflicts), or, when
        there was none, its uri (the commit then creates it or fails: ``SilverTables.write``)."""
        return self.table if self.table is not None else uri


def commit_properties(
    manifest: Manifest, this: AppliedBatch, mode: str, record: BatchRecord | None = None, **extra: str
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
            "lakehouse.source": manifest.source,
            "lakehouse.stream": manifest.stream,
            **extra,
        },
    )


def with_transactions(commit: CommitProperties, *extra: Transaction) -> CommitProperties:
    """``commit`` with more application transactions."""
    return CommitProperties(
        custom_metadata=commit.custom_metadata,
        app_transactions=[*(commit.app_transactions or []), *extra],
        max_commit_retries=commit.max_commit_retries,
    )


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
