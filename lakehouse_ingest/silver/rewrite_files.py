"""One data file of a silver table in the rewrite: read it, match its rows with its slice of the batch, and
write its new content (with its Delta statistics) as new files.

``rewrite`` plans which files a batch touches and commits; here is what is done to each of them, and the state
the steps share (``MergeContext``: where the files are, the batch, how to write). A file's rows are matched by key
with the batch rows of its key range; a batch row replaces a row only if it is newer (``dedup.newer_mask``: cursor,
then ``_airbyte_extracted_at``), a CDC delete removes it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import AddAction, RemoveAction

from lakehouse_ingest.silver.dedup import newer_mask
from lakehouse_ingest.silver.delta_stats import delta_stats

DEFAULT_TARGET_FILE_SIZE = 104_857_600  # delta-rs's default for ``delta.targetFileSize``
ROW_GROUP_ROWS = 1_048_576
DICTIONARY_GAVE_UP = 65_536  # bytes of a file's dictionary page from which its column is written without one


@dataclass
class DataFile:
    """One data file of the table: its ``add`` action and what changes in it."""

    index: int
    path: str
    size: int
    rows: int
    low: Any  # min of the first key column (None: unknown)
    high: Any  # max of the first key column, widened to an upper bound (None: unknown)
    start: int = 0  # the batch rows [start, stop) are within [low, high]
    stop: int = 0
    alone: bool = False  # no other file's range holds a key of [start, stop): settled in one pass
    keep: pa.Array | None = None  # rows kept (None: all), from pass 1
    winners: list[pa.Array] = field(default_factory=list)  # batch positions written into this file, from pass 1


@dataclass
class Counts:
    """Rows inserted, updated and deleted (the counts delta-rs ``merge`` reports)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted


@dataclass
class MergeContext:
    """What every step of one merge needs: where the files are, the batch, and how to write."""

    fs: Any
    base: str  # the table's directory in ``fs``
    schema: pa.Schema
    batch: pa.Table  # conformed to ``schema``, sorted by key
    keys: list[str]
    cursor: str | None
    versions: list[str]
    deleted: pa.Array  # the batch row is a CDC delete
    target_size: int = DEFAULT_TARGET_FILE_SIZE
    stats_columns: Callable[[str], bool] = lambda path: True
    dictionary: list[str] | bool = True
    now: int = field(default_factory=lambda: int(time.time() * 1000))

    def path(self, file: DataFile) -> str:
        return f"{self.base}/{file.path}"


Done = tuple[list[AddAction | RemoveAction], Counts]


def settle(merge: MergeContext, file: DataFile) -> Done:
    """A file ``alone`` with its slice of the batch, in one read: match, count, and rewrite it if it changes."""
    current = read_columns(merge.fs, merge.path(file), merge.schema.names, merge.schema)
    size = file.stop - file.start
    part = merge.batch.slice(file.start, size)
    keys_and_versions = merge.keys + merge.versions
    drop, matched, loses = match_rows(
        current.select(keys_and_versions), part.select(keys_and_versions), merge.keys, merge.versions, merge.cursor
    )
    positions = row_positions(size)
    was_matched = member(positions, [matched] if matched is not None else [], size)
    lost = member(positions, [matched.filter(loses)] if matched is not None and loses is not None else [], size)
    wins, deleted = pc.invert(lost), merge.deleted.slice(file.start, size)
    kept = pc.invert(deleted)
    counts = Counts(
        inserted=count(pc.and_(wins, pc.and_(pc.invert(was_matched), kept))),
        updated=count(pc.and_(wins, pc.and_(was_matched, kept))),
        deleted=count(pc.and_(wins, pc.and_(was_matched, deleted))),
    )
    written = pc.indices_nonzero(pc.and_(wins, kept))
    dropping = drop is not None and bool(pc.any(drop).as_py())
    if not dropping and not len(written):
        return [], counts  # every batch row of its range lost to a newer row: the file stays as it is
    bytes_per_row = file.size / max(current.num_rows, 1)
    if dropping and drop is not None:
        current = current.filter(pc.invert(drop))  # (the only reference: the file as read is freed here)
    winners = [pc.add(written, file.start)] if len(written) else []
    return _replace(merge, file, current, winners, bytes_per_row), counts


def rewrite_file(merge: MergeContext, file: DataFile) -> Done:
    """A file changed by pass 1's decisions."""
    current = read_columns(merge.fs, merge.path(file), merge.schema.names, merge.schema)
    bytes_per_row = file.size / max(current.num_rows, 1)
    if file.keep is not None:
        current = current.filter(file.keep)  # (the only reference: the file as read is freed here)
    return _replace(merge, file, current, file.winners, bytes_per_row), Counts()


def _replace(
    merge: MergeContext, file: DataFile, kept: pa.Table, winners: list[pa.Array], bytes_per_row: float
) -> list[AddAction | RemoveAction]:
    """The file's kept rows plus its winners written as new file(s); the old file removed."""
    rows = pa.concat_tables([kept, *(merge.batch.take(positions) for positions in winners)])
    done: list[AddAction | RemoveAction] = [
        RemoveAction(file.path, True, merge.now, size=file.size, partition_values={})
    ]
    done.extend(write_rows(merge, rows, bytes_per_row))
    return done


def read_columns(fs: Any, path: str, columns: list[str], schema: pa.Schema) -> pa.Table:
    """``columns`` of one data file, as the table's schema types them (a column the file predates is null)."""
    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        there = [c for c in columns if c in parquet.schema_arrow.names]
        data = parquet.read(columns=there)
    return conform(data, pa.schema([schema.field(c) for c in columns]))


def dictionary_columns(fs: Any, path: str) -> list[str] | bool:
    """The columns worth dictionary-encoding, judged from a data file's footer.

    Encoding a column whose dictionary overflows (unique ids, emails, floats) costs a hash per value and is then
    thrown away: about a fifth of a file's write time. A file's dictionary pages tell which ones those are (a
    dictionary page of ``DICTIONARY_GAVE_UP`` bytes or more); the others keep their dictionary."""
    with fs.open_input_file(path) as handle:
        metadata = pq.ParquetFile(handle).metadata
    if not metadata.num_row_groups:
        return True
    group = metadata.row_group(0)
    chosen = []
    for column in range(group.num_columns):
        chunk = group.column(column)
        page = chunk.data_page_offset - chunk.dictionary_page_offset if chunk.has_dictionary_page else None
        if page is not None and 0 < page < DICTIONARY_GAVE_UP:
            chosen.append(chunk.path_in_schema)
    return chosen


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns in its order and types (missing ones null)."""
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.chunked_array([pa.nulls(table.num_rows, target.type)]))
            continue
        column = table.column(target.name)
        columns.append(column if column.type == target.type else column.cast(target.type))
    return pa.Table.from_arrays(columns, schema=schema)


def match_rows(
    present: pa.Table, part: pa.Table, keys: list[str], versions: list[str], cursor: str | None
) -> tuple[pa.Array | None, pa.Array | None, pa.Array | None]:
    """A file's rows against the batch rows of its key range: (the file rows the batch replaces, as a mask;
    the batch rows that matched a row, as positions in ``part``; whether each of those loses to that row)."""
    if present.num_rows == 0 or part.num_rows == 0:
        return None, None, None
    if len(keys) == 1:
        position = pc.index_in(present.column(keys[0]), value_set=part.column(keys[0]).combine_chunks())
    else:  # composite key: a hash join of the key columns (nulls never match, as in SQL)
        left = present.select(keys).append_column("__row", row_positions(present.num_rows))
        right = part.select(keys).append_column("__batch", row_positions(part.num_rows))
        joined = left.join(right, keys=keys, join_type="left outer", use_threads=True).sort_by("__row")
        position = joined.column("__batch").combine_chunks()
        if len(position) != present.num_rows:  # the batch is one row per key, so a file row matches one at most
            raise AssertionError("batch rows are not unique per key")
    position = position.combine_chunks() if isinstance(position, pa.ChunkedArray) else position
    hit = pc.is_valid(position)
    if not pc.any(hit).as_py():
        return None, None, None
    # versions compared on the matched rows only (a few percent of the file), then scattered back into a mask
    rows = pc.indices_nonzero(hit)
    matched_rows = position.filter(hit)
    theirs = {c: part.column(c).take(matched_rows) for c in versions}
    newer = newer_mask(theirs, {c: present.column(c).take(rows) for c in versions}, cursor)
    drop = pc.replace_with_mask(hit, hit, newer)
    return drop, matched_rows.cast(pa.int64()), pc.invert(newer)


def row_positions(size: int) -> pa.Array:
    """0, 1, ..., size - 1 (int64), without a Python loop."""
    if size == 0:
        return pa.array([], pa.int64())
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), size)), 1)


def member(positions: pa.Array | None, parts: list[pa.Array], size: int) -> pa.Array:
    """A mask of ``size`` rows: the positions listed in ``parts``."""
    if positions is None or not parts:
        return pa.repeat(pa.scalar(False), size)
    return pc.is_in(positions, value_set=pa.concat_arrays(parts))


def count(mask: pa.Array) -> int:
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)


def target_file_size(table: DeltaTable) -> int:
    configured = (table.metadata().configuration or {}).get("delta.targetFileSize")
    try:
        return int(configured) if configured else DEFAULT_TARGET_FILE_SIZE
    except ValueError:
        return DEFAULT_TARGET_FILE_SIZE


def write_rows(merge: MergeContext, rows: pa.Table, bytes_per_row: float, ordered: bool = False) -> Iterator[AddAction]:
    """Write ``rows`` as one new data file, or several (sorted by key, so their ranges do not overlap) when it
    would exceed twice the target size; yield their ``add`` actions."""
    if rows.num_rows == 0:
        return
    pieces = max(1, math.ceil(rows.num_rows * bytes_per_row / merge.target_size)) if bytes_per_row else 1
    if pieces > 1 and rows.num_rows * bytes_per_row > 2 * merge.target_size:
        if not ordered:
            keys = merge.keys
            rows = rows.take(pc.sort_indices(rows.select(keys), sort_keys=[(k, "ascending") for k in keys]))
        step = math.ceil(rows.num_rows / pieces)
        chunks = [rows.slice(start, step) for start in range(0, rows.num_rows, step)]
    else:
        chunks = [rows]
    for chunk in chunks:
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        with merge.fs.open_output_stream(f"{merge.base}/{name}") as sink:
            writer = pq.ParquetWriter(sink, chunk.schema, compression="snappy", use_dictionary=merge.dictionary)
            writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
            writer.close()
            size = sink.tell()
        stats = delta_stats(writer.writer.metadata, chunk.schema, merge.stats_columns)
        yield AddAction(name, size, {}, merge.now, True, stats)
