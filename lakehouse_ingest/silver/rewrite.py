"""Silver merge by file rewrite: the batch's changes applied file by file with Arrow, committed as one Delta commit.

Why not delta-rs ``merge``: when a batch's keys are spread over the whole table (every file holds a changed key),
its copy-on-write merge joins the whole table with the batch in DataFusion and holds it: 2.9 GB peak for a 10M-row
table, growing with the table, and 2-3x DuckDB's time (bench/silver_merge.py, bench/silver_merge_findings.md).
Delta has no other way to change a row than rewriting its file (deletion vectors are not writable from Python
delta-rs), so the work is inherent; what is not is holding the table at once. Here:

1. The batch (newest row per key, sorted by key) is split by the files' key ranges (``rewrite_plan``): a file
   whose ``[min, max]`` cannot hold a key of the batch is never read.
2. A file whose slice of the batch no other file's range reaches (the usual case: ranges are disjoint) is
   settled in one read (``rewrite_files.settle``): its rows are matched by key with the slice, a batch row
   replacing a row only if it is newer (cursor, then ``_airbyte_extracted_at``: ``dedup.newer_mask``), and if
   anything changes the file is rewritten: its rows minus the replaced ones, plus the slice's winners (an updated
   key stays in its file, a new key inside its range joins it).
3. Files whose ranges overlap (written by another writer, or without statistics) share batch rows, so they are
   decided together first: pass 1 reads only their key and version columns and keeps one bit per row (which
   rows are replaced) and where each winner goes; then each changed file is rewritten as above.
4. New keys outside every file's range go to new files, already sorted by key and cut where a file's range
   begins, so ranges never overlap and the next batch prunes well.
5. The ``remove`` of every rewritten file and the ``add`` of every new one (with Delta statistics from the
   Parquet footer, ``delta_stats``) are committed in ONE Delta transaction, with the batch's application
   transactions, from the table as read with the record: exactly once as before, and a concurrent commit
   conflicts (its ``lakehouse.snapshot`` transaction, and the files both remove) instead of losing or duplicating
   rows; the loser's files are deleted and the caller retries.

Memory is bounded by the batch plus ``WORKERS`` files in flight; the table's size adds nothing but its file list
(and one bit per row of overlapping files).

Only plain tables are handled (protocol reader 1 / writer <= 2, no partitions, no change data feed, no
invariants) and only a batch with exactly the table's columns (a new or missing column is schema evolution,
whose per-column rules delta-rs ``merge`` keeps), scalar keys and one row per key; otherwise ``rewrite_merge``
returns None and the caller merges with delta-rs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.silver.dedup import version_columns
from lakehouse_ingest.silver.delta_stats import stats_columns
from lakehouse_ingest.silver.rewrite_files import (
    Counts,
    DataFile,
    Done,
    MergeContext,
    conform,
    count,
    dictionary_columns,
    match_rows,
    member,
    read_columns,
    rewrite_file,
    row_positions,
    settle,
    target_file_size,
    write_rows,
)
from lakehouse_ingest.silver.rewrite_plan import (
    covering_file,
    gaps,
    key_slices,
    mark_alone,
    plain_table_schema,
    repeats_a_key,
    sorted_by_key,
    table_files,
)
from lakehouse_ingest.silver.tombstones import CDC_DELETED

WORKERS = 2  # files read and written at once (see _second_pass)


@dataclass(frozen=True)
class RewriteResult:
    """What the rewrite committed (the counts delta-rs ``merge`` reports)."""

    inserted: int
    updated: int
    deleted: int
    files_removed: int
    files_added: int


def rewrite_merge(
    storage: LakeStorage,
    table_key: str,
    table: DeltaTable,
    latest: pa.Table,
    keys: list[str],
    cursor: str | None,
    commit: CommitProperties,
) -> RewriteResult | None:
    """Merge ``latest`` (newest row per key, tombstoned rows dropped) into ``table``, or None when the table or
    the batch needs delta-rs ``merge`` (see the module docstring)."""
    schema = plain_table_schema(table)
    if schema is None or set(latest.column_names) != set(schema.names) or not set(keys) <= set(schema.names):
        return None
    if any(pa.types.is_nested(schema.field(k).type) for k in keys):
        return None  # Arrow matches and joins scalar keys only
    try:
        batch = sorted_by_key(conform(latest, schema), keys)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a type delta-rs merge would cast (or refuse) itself
    if repeats_a_key(batch, keys):
        return None  # not one row per key: delta-rs merge refuses what matches twice, as before
    files = table_files(table, keys[0])
    if files is None:
        return None
    fs, root = storage.filesystem()
    deleted = (
        pc.fill_null(pc.is_valid(batch.column(CDC_DELETED)), False)
        if CDC_DELETED in batch.column_names
        else pa.repeat(pa.scalar(False), batch.num_rows)
    )
    merge = MergeContext(fs, f"{root}/{table_key}", schema, batch, keys, cursor, version_columns(cursor), deleted)
    key_slices(batch.column(keys[0]), files)
    mark_alone(files)
    counts, outside = _first_pass(merge, files)

    # pass 2: the changed files and the new ones; nothing is committed until every file is written
    actions: list[AddAction | RemoveAction] = []
    committing = False
    try:
        counts.add(_second_pass(merge, table, files, outside, actions))
        committing = True
        # one commit, also when nothing changed (the batch's application transactions are recorded all the same)
        table.create_write_transaction(actions, "append", table.schema(), commit_properties=commit)
    except Exception as exc:
        if not committing or isinstance(exc, CommitFailedError):  # surely not in the table: remove them
            _discard(fs, merge.base, actions)
        raise  # a lost race (CommitFailedError) is retried by the caller, which re-reads the record first
    removed = sum(isinstance(a, RemoveAction) for a in actions)
    return RewriteResult(counts.inserted, counts.updated, counts.deleted, removed, len(actions) - removed)


def _first_pass(merge: MergeContext, files: list[DataFile]) -> tuple[Counts, pa.Array]:
    """Pass 1 over the files that share batch rows with another file: their key and version columns decide which
    of their rows are replaced, which batch rows lose, and which file each winner is written to. Returns the
    counts of those batch rows (the rows of files ``alone`` are counted when they are settled) and the winners
    outside every file's range, for new files."""
    batch, size = merge.batch, merge.batch.num_rows
    shared = [f for f in files if f.stop > f.start and not f.alone]

    def read_and_match(file: DataFile) -> tuple[DataFile, pa.Array | None, pa.Array | None, pa.Array | None]:
        part = batch.slice(file.start, file.stop - file.start).select(merge.keys + merge.versions)
        present = read_columns(merge.fs, merge.path(file), merge.keys + merge.versions, merge.schema)
        return (file, *match_rows(present, part, merge.keys, merge.versions, merge.cursor))

    losers: list[pa.Array] = []
    matched: list[pa.Array] = []
    matched_in: list[pa.Array] = []
    with ThreadPoolExecutor(WORKERS) as pool:
        for file, drop, batch_rows, batch_loses in pool.map(read_and_match, shared):
            if batch_rows is not None and batch_loses is not None and len(batch_rows):
                batch_rows = pc.add(batch_rows, file.start)
                matched.append(batch_rows)
                matched_in.append(pa.repeat(pa.scalar(file.index, pa.int32()), len(batch_rows)))
                losers.append(batch_rows.filter(batch_loses))
            if drop is not None and pc.any(drop).as_py():
                file.keep = pc.invert(drop)

    positions = row_positions(size) if size else None
    wins = pc.invert(member(positions, losers, size))
    home = _home(positions, matched, matched_in, size)  # the file of the row a batch row matched
    was_matched = pc.is_valid(home)
    settled_alone = _segments([(f.start, f.stop) for f in files if f.alone], size)
    mine = pc.and_(wins, pc.invert(settled_alone))
    kept = pc.invert(merge.deleted)
    counts = Counts(
        inserted=count(pc.and_(mine, pc.and_(pc.invert(was_matched), kept))),
        updated=count(pc.and_(mine, pc.and_(was_matched, kept))),
        deleted=count(pc.and_(mine, pc.and_(was_matched, merge.deleted))),
    )
    # where each winning row is written: the file it replaces a row of, else the first file whose range holds it
    destination = pc.coalesce(home, covering_file(files, size))
    written = pc.and_(mine, kept)
    _hand_out(pc.indices_nonzero(pc.and_(written, pc.is_valid(destination))), destination, files)
    return counts, pc.indices_nonzero(pc.and_(written, pc.is_null(destination)))


def _second_pass(
    merge: MergeContext,
    table: DeltaTable,
    files: list[DataFile],
    outside: pa.Array,
    actions: list[AddAction | RemoveAction],
) -> Counts:
    """Write the new content of every changed file, and the new files; append their actions, return the counts
    of the files settled here.

    ``WORKERS`` files at a time: reading and writing one file's Parquet is single-threaded work in Arrow, so
    two files in flight use both cores of the target machine, at the memory of two files."""
    merge.target_size = target_file_size(table)
    merge.stats_columns = stats_columns(table, merge.schema)
    counted = [f for f in files if f.rows > 0]  # (a file whose add action lacks numRecords says nothing)
    whole = sum(f.size for f in counted) / sum(f.rows for f in counted) if counted else 0.0
    # one choice for all files written: the table's rows look alike, and the largest file says most about them
    if files:
        merge.dictionary = dictionary_columns(merge.fs, merge.path(max(files, key=lambda f: f.rows)))

    def insert(positions: pa.Array) -> Done:
        rows = merge.batch.take(positions)
        return list(write_rows(merge, rows, whole, ordered=True)), Counts()

    jobs: list[Callable[[], Done]] = [functools.partial(settle, merge, file) for file in files if file.alone]
    jobs.extend(functools.partial(rewrite_file, merge, file) for file in files if file.keep is not None or file.winners)
    jobs.extend(functools.partial(insert, group) for group in gaps(outside, files))
    counts = Counts()
    error: BaseException | None = None
    pa.default_memory_pool().release_unused()  # what reading and sorting the batch freed, before the files
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(_released, job) for job in jobs]
        for future in futures:
            try:
                done, settled = future.result()
            except Exception as exc:  # the others finish or are cancelled, so their files can be discarded
                error = error or exc
                for pending in futures:
                    pending.cancel()
                continue
            actions.extend(done)
            counts.add(settled)
    if error is not None:
        raise error
    return counts


def _released(job: Callable[[], Done]) -> Done:
    """Run ``job``, then hand the memory it freed back to the system: Arrow's allocator keeps freed pages for
    reuse, and with two files in flight their peaks would otherwise add up in the resident set."""
    try:
        return job()
    finally:
        pa.default_memory_pool().release_unused()


def _discard(fs: Any, base: str, actions: list[AddAction | RemoveAction]) -> None:
    """Delete the files written for a commit that did not happen (best effort: VACUUM would find them too)."""
    for action in actions:
        if isinstance(action, AddAction):
            with contextlib.suppress(OSError):
                fs.delete_file(f"{base}/{action.path}")


def _hand_out(chosen: pa.Array, destination: pa.Array, files: list[DataFile]) -> None:
    """Give each file the batch rows written into it (``chosen``, ascending; ``destination``: their file), in
    one sort instead of a pass over the batch per file."""
    if not len(chosen):
        return
    owners = destination.take(chosen)
    order = pc.sort_indices(owners)  # stable: each file's rows stay in key order
    chosen, owners = chosen.take(order), owners.take(order)
    by_index = {file.index: file for file in files}
    offset = 0
    for entry in pc.value_counts(owners).to_pylist():  # in order of first appearance, i.e. ascending
        count = int(entry["counts"])
        by_index[int(entry["values"])].winners.append(chosen.slice(offset, count))
        offset += count


def _home(positions: pa.Array | None, matched: list[pa.Array], files: list[pa.Array], size: int) -> pa.Array:
    """For each batch row, the file holding the row its key matched (null: no row matched)."""
    if positions is None or not matched:
        return pa.nulls(size, pa.int32())
    where = pc.index_in(positions, value_set=pa.concat_arrays(matched))
    return pa.concat_arrays(files).take(where)


def _segments(ranges: list[tuple[int, int]], size: int) -> pa.Array:
    """A mask of ``size`` rows, true within the (disjoint) ``[start, stop)`` ranges."""
    pieces: list[pa.Array] = []
    done = 0
    for start, stop in sorted(ranges):
        if start > done:
            pieces.append(pa.repeat(pa.scalar(False), start - done))
        pieces.append(pa.repeat(pa.scalar(True), stop - start))
        done = stop
    if done < size:
        pieces.append(pa.repeat(pa.scalar(False), size - done))
    return pa.concat_arrays(pieces) if pieces else pa.repeat(pa.scalar(False), size)
