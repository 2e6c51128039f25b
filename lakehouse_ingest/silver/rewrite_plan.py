"""Which data files a batch touches: the table's files with their key ranges (Delta ``add`` statistics of the
first key column), the slice of the batch (sorted by key) each range can hold, and where new keys go.

Also whether the rewrite may handle a table and a batch at all (``plain_table_schema``, ``sorted_by_key``,
``repeats_a_key``); ``rewrite`` leaves the others to delta-rs ``merge``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse_ingest.silver.rewrite_files import DataFile


def plain_table_schema(table: DeltaTable) -> pa.Schema | None:
    """The table's Arrow schema if this module may write it: no feature a writer must honour beyond plain files."""
    protocol = table.protocol()
    metadata = table.metadata()
    configuration = metadata.configuration or {}
    if protocol.min_reader_version > 1 or protocol.min_writer_version > 2 or metadata.partition_columns:
        return None
    if configuration.get("delta.enableChangeDataFeed", "false").lower() == "true":
        return None
    if configuration.get("delta.appendOnly", "false").lower() == "true":
        return None
    if any(name.startswith("delta.constraints.") for name in configuration):
        return None
    schema = pa.schema(table.schema().to_arrow())
    if "delta.invariants" in json.dumps(table.schema().to_json()):
        return None
    return schema


def table_files(table: DeltaTable, key: str) -> list[DataFile] | None:
    """The table's data files with the key range of each, in the order of their lowest key."""
    actions = pa.table(table.get_add_actions(flatten=True))
    names = set(actions.column_names)
    wanted = ["path", "size_bytes", "num_records", f"min.{key}", f"max.{key}"]
    files = []
    for index, row in enumerate(actions.select([c for c in wanted if c in names]).to_pylist()):
        path = row["path"]
        if "://" in path or path.startswith("/"):
            return None  # an absolute path (a shallow clone): not ours to rewrite
        low, high = row.get(f"min.{key}"), row.get(f"max.{key}")
        if f"min.{key}" not in names or not _prunable(low) or not _prunable(high):
            low = high = None
        elif isinstance(high, dt.datetime):
            high = high + dt.timedelta(milliseconds=1)  # Delta's timestamp statistics are truncated to ms
        files.append(DataFile(index, path, int(row["size_bytes"]), int(row["num_records"] or 0), low, high))
    return files


def _prunable(value: Any) -> bool:
    """Key values whose Delta statistics bound the file's keys exactly as Arrow orders them."""
    return isinstance(value, int | str | dt.date | dt.datetime) and not isinstance(value, bool)


def key_slices(column: pa.ChunkedArray, files: list[DataFile]) -> None:
    """Each file's slice of the batch (sorted by key, nulls last): the rows its key range can hold.

    A null key never matches (SQL equality), so no file holds it; a file without usable statistics is a
    candidate for every non-null key."""
    keys = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = len(keys) - keys.null_count

    def value(i: int) -> Any:
        return keys[i].as_py()

    for file in files:
        if file.low is None or file.high is None:
            file.start, file.stop = 0, valid
            continue
        try:
            file.start = _bisect(value, valid, _below(file.low))
            file.stop = _bisect(value, valid, _at_most(file.high))
        except TypeError:  # statistics of another type than the key (an evolved column): no pruning
            file.low = file.high = None
            file.start, file.stop = 0, valid


def _below(bound: Any) -> Callable[[Any], bool]:
    return lambda value: bool(value < bound)


def _at_most(bound: Any) -> Callable[[Any], bool]:
    return lambda value: bool(value <= bound)


def _bisect(value: Callable[[int], Any], size: int, before: Callable[[Any], bool]) -> int:
    """The first position whose value is not ``before`` (values sorted ascending)."""
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if before(value(middle)):
            low = middle + 1
        else:
            high = middle
    return low


def mark_alone(files: list[DataFile]) -> None:
    """Mark the files whose slice of the batch no other file's slice overlaps (the usual case, key ranges being
    disjoint): what happens to their rows and to the batch rows of that slice depends on them alone, so one
    read of the whole file settles both, without pass 1's read of the key columns."""
    candidates = sorted((f for f in files if f.stop > f.start), key=lambda f: (f.start, f.stop))
    reach = -1  # the furthest stop of the candidates before
    for position, file in enumerate(candidates):
        following = candidates[position + 1].start if position + 1 < len(candidates) else None
        file.alone = file.low is not None and file.start >= reach and (following is None or following >= file.stop)
        reach = max(reach, file.stop)


def covering_file(files: list[DataFile], size: int) -> pa.Array:
    """For each batch row, the first file (lowest key range first) whose key range holds it (null: none)."""
    segments: list[tuple[int, int, int]] = []  # (start, stop, file index), first come first served
    for file in sorted(files, key=lambda f: (f.start, f.index)):
        if file.low is None:  # no statistics: it "holds" every key, but new keys go to tidy new files instead
            continue
        segments.append((file.start, file.stop, file.index))
    pieces: list[pa.Array] = []
    done = 0
    for start, stop, index in segments:
        start = max(start, done)
        if stop <= start:
            continue
        if start > done:
            pieces.append(pa.nulls(start - done, pa.int32()))
        pieces.append(pa.repeat(pa.scalar(index, pa.int32()), stop - start))
        done = stop
    if done < size:
        pieces.append(pa.nulls(size - done, pa.int32()))
    return pa.concat_arrays(pieces) if pieces else pa.nulls(size, pa.int32())


def gaps(outside: pa.Array, files: list[DataFile]) -> list[pa.Array]:
    """The new keys outside every file's range, cut where a file's range begins (``outside`` is ascending, in
    batch positions): each piece lies between two files, so a new file of it overlaps none."""
    starts = sorted({f.start for f in files if f.low is not None})
    pieces, done = [], 0
    for start in starts:
        cut = _bisect(lambda i: outside[i].as_py(), len(outside), _below(start))
        if cut > done:
            pieces.append(outside.slice(done, cut - done))
            done = cut
    if done < len(outside):
        pieces.append(outside.slice(done))
    return pieces


def sorted_by_key(batch: pa.Table, keys: list[str]) -> pa.Table:
    """The batch sorted by key, nulls last (``latest_per_key`` returns it so; checked, since the key ranges are
    looked up by bisection and an unsorted batch would silently miss rows)."""
    first = batch.column(keys[0])
    valid = len(first) - first.null_count
    head = first.slice(0, valid)
    ordered = first.null_count == 0 or first.slice(valid).null_count == len(first) - valid
    if ordered and valid > 1:
        ordered = bool(pc.all(pc.less_equal(head.slice(0, valid - 1), head.slice(1))).as_py())
    if ordered:
        return batch
    return batch.take(pc.sort_indices(batch.select(keys), sort_keys=[(k, "ascending") for k in keys]))


def repeats_a_key(batch: pa.Table, keys: list[str]) -> bool:
    """Two rows of the (sorted) batch share a key with no null in it. ``latest_per_key`` leaves one row per key;
    the matching here relies on it (a key's second row would be inserted a second time)."""
    if batch.num_rows < 2:
        return False
    same: Any = None
    for key in keys:
        column = batch.column(key)
        equal = pc.fill_null(pc.equal(column.slice(1), column.slice(0, batch.num_rows - 1)), False)
        same = equal if same is None else pc.and_(same, equal)
    return bool(pc.any(same).as_py())
