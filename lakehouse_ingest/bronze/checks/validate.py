"""Validation of one stream batch, before anything is handed on.

Built in, for every batch: exactly this sync's files are there (selected by key epoch, ignoring other
syncs, folder markers and foreign objects); each reads as Parquet (footers fetched concurrently); the
Airbyte columns are present with their types (destination ≥ 1.0: ``_airbyte_raw_id``,
``_airbyte_extracted_at``, ``_airbyte_meta``, ``_airbyte_generation_id``; or the legacy ``_airbyte_ab_id``,
``_airbyte_emitted_at``); the row count from the footers (no data read) equals what the engine or Airbyte
counted; every row carries this sync's id and the batch's generation id (so a full-refresh overwrite holds
only its own generation); primary-key columns are never null; the schema against the last validated batch
(drift policy). Then the catalog's declarative rules. The built-in data checks and the rules are evaluated
together in one pass (``scan``): footer statistics decide what they can, and each column is read at
most once per row group. Memory stays bounded by a few row groups plus 8 bytes per row per uniqueness check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from lakehouse_ingest.bronze.batch import Expected, StreamBatch
from lakehouse_ingest.bronze.checks.probes import Constant, Fixed, PrimaryKeyNotNull, Probe
from lakehouse_ingest.bronze.checks.results import CheckResult, short_error
from lakehouse_ingest.bronze.checks.rules import Decodable, changes_probe, rule_probes, size_rules
from lakehouse_ingest.bronze.checks.scan import Opener, scan
from lakehouse_ingest.catalog.sources import StreamChecks
from lakehouse_ingest.lake.keys import data_file_epoch, is_data_file_of
from lakehouse_ingest.lake.names import column_name
from lakehouse_ingest.lake.storage import LakeStorage, check_key

# Footers fetched at once: object stores answer each in a round trip, so many at a time pay off.
FOOTER_THREADS = 32


@dataclass
class BatchValidation:
    """All checks of one stream batch."""

    source: str
    stream: str
    sync_id: int
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def reconciliation(self) -> str | None:
        """What the row count was proven against (the ``row_count`` check's detail), when that check ran."""
        return next((c.detail for c in self.checks if c.name == "row_count"), None)

    @property
    def failure(self) -> str | None:
        """One line naming the stream, the first failed check and its file, or None."""
        for check in self.checks:
            if not check.passed:
                where = f" in {check.file}" if check.file else ""
                return f"{self.source}.{self.stream}: check '{check.name}' failed{where}: {check.detail}"
        return None


def _is_timestamp_or_int(t: pa.DataType) -> bool:
    return pa.types.is_int64(t) or (pa.types.is_timestamp(t) and t.tz in {"UTC", "+00:00", "Etc/UTC"})


def _is_meta(t: pa.DataType) -> bool:
    if not pa.types.is_struct(t):
        return False
    names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
    return bool(
        pa.types.is_int64(names.get("sync_id", pa.null())) and pa.types.is_list(names.get("changes", pa.null()))
    )


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


AIRBYTE_COLUMN_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "_airbyte_raw_id": _is_string,
    "_airbyte_extracted_at": _is_timestamp_or_int,
    "_airbyte_meta": _is_meta,
    "_airbyte_generation_id": pa.types.is_int64,
}
# Destinations before 1.0 (no sync id, so a batch is isolated by its keys alone).
LEGACY_COLUMN_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "_airbyte_ab_id": _is_string,
    "_airbyte_emitted_at": _is_timestamp_or_int,
}


def validate_batch(
    storage: LakeStorage,
    batch: StreamBatch,
    checks: StreamChecks | None = None,
    previous_schema: list[dict[str, Any]] | None = None,
) -> BatchValidation:
    """Run every check on ``batch``; stops early when files are missing, unreadable or not Airbyte's."""
    result = BatchValidation(batch.source, batch.stream, batch.sync_id)
    files = _reconcile(storage, batch, result.checks)
    if files is None:
        return result
    result.checks.append(_check_airbyte_columns(files))
    if not result.checks[-1].passed:
        return result
    legacy = all("_airbyte_meta" not in p.schema_arrow.names for _, p in files) and bool(files)
    checks = checks or StreamChecks()
    result.checks.append(_check_row_count(files, batch.expectation, checks.reconcile))
    built_in: list[Probe]
    if legacy:
        built_in = [
            Fixed(CheckResult("sync_id", True, "legacy destination: batch isolated by its keys")),
            Fixed(CheckResult("generation_id", True, "legacy destination: no generation id recorded")),
        ]
    else:
        built_in = [
            Constant("sync_id", "_airbyte_meta.sync_id", batch.sync_id, "sync id"),
            Constant("generation_id", "_airbyte_generation_id", batch.generation_id, "generation id"),
        ]
    built_in += [PrimaryKeyNotNull([column_name(p) for p in path]) for path in batch.primary_key]
    drift = _check_schema_drift(files, previous_schema, checks.schema_drift)
    rows = sum(p.metadata.num_rows for _, p in files)
    keys = [column_name(path[0]) for path in batch.primary_key if len(path) == 1]
    rules: list[Probe] = []
    if result.passed and drift.passed:  # otherwise the data itself is in doubt: rules would only add noise
        rules = [*rule_probes(rows, checks, keys), changes_probe(files, checks)]
        if checks.verify_data and files:
            rules.append(Decodable(files[0][1].schema_arrow.names))
    try:
        outcomes = scan(files, built_in + rules, _opener(storage, files))
    except (OSError, pa.ArrowException) as exc:
        result.checks.append(CheckResult("rules", False, f"data cannot be read: {short_error(exc)}"))
        return result
    result.checks.extend(outcomes[: len(built_in)])
    result.checks.append(drift)
    if rules and result.passed:
        result.checks.extend(size_rules(rows, checks, overwrite=batch.destination_sync_mode == "overwrite"))
        result.checks.extend(outcomes[len(built_in) :])
    return result


def reconcile(storage: LakeStorage, batch: StreamBatch, policy: str = "warn") -> list[CheckResult]:
    """Files listed, readable, and the row count from their footers only (no column is read)."""
    results: list[CheckResult] = []
    files = _reconcile(storage, batch, results)
    if files is not None:
        results.append(_check_row_count(files, batch.expectation, policy))
    return results


def _reconcile(
    storage: LakeStorage, batch: StreamBatch, results: list[CheckResult]
) -> list[tuple[str, pq.ParquetFile]] | None:
    """``files_listed`` and ``readable_parquet`` into ``results``; the open files, or None when either failed."""
    listed, sizes = _check_files_listed(storage, batch)
    results.append(listed)
    if not listed.passed:
        return None
    keys = [part.key for part in batch.files]
    files: list[tuple[str, pq.ParquetFile]] = []
    for key, opened in zip(keys, open_footers(storage, [(key, sizes[key]) for key in keys]), strict=True):
        if not isinstance(opened, pq.ParquetFile):
            results.append(CheckResult("readable_parquet", False, short_error(opened), key))
            return None
        files.append((key, opened))
    results.append(CheckResult("readable_parquet", True, f"{len(files)} file(s) open as Parquet"))
    return files


def open_footers(storage: LakeStorage, objects: Sequence[tuple[str, int]]) -> list[pq.ParquetFile | Exception]:
    """The footer of each (key, size), read concurrently; an exception in place of a file that is not Parquet.

    Knowing the size from the listing, each footer costs one ranged read (no HEAD request first). The
    returned ParquetFile holds the footer only (its source is a placeholder): data is read through readers
    opened per worker thread (``_opener``).
    """
    fs, root = storage.filesystem()
    parquet_format = pads.ParquetFileFormat()

    def one(item: tuple[str, int]) -> pq.ParquetFile | Exception:
        key, size = item
        try:
            fragment = parquet_format.make_fragment(f"{root}/{check_key(key)}", filesystem=fs, file_size=size)
            fragment.ensure_complete_metadata()
            return pq.ParquetFile(pa.BufferReader(b"PAR1"), metadata=fragment.metadata)
        except (OSError, pa.ArrowException) as exc:
            return exc

    if len(objects) <= 1:
        return [one(item) for item in objects]
    with ThreadPoolExecutor(max_workers=min(FOOTER_THREADS, len(objects))) as pool:
        return list(pool.map(one, objects))


def _opener(storage: LakeStorage, files: list[tuple[str, pq.ParquetFile]]) -> Opener:
    """Private readers for the scan's worker threads, reusing the footers already read."""
    fs, root = storage.filesystem()

    def opener(index: int, encoded: Sequence[str]) -> pq.ParquetFile:
        key, parquet = files[index]
        handle = fs.open_input_file(f"{root}/{check_key(key)}")
        return pq.ParquetFile(handle, metadata=parquet.metadata, read_dictionary=list(encoded) or None)

    return opener


def batch_schema(files: list[tuple[str, pq.ParquetFile]]) -> list[dict[str, Any]]:
    """The schema as manifests record it: name, Arrow type, nullability."""
    if not files:
        return []
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in files[0][1].schema_arrow]


def _check_schema_drift(
    files: list[tuple[str, pq.ParquetFile]], previous: list[dict[str, Any]] | None, policy: str
) -> CheckResult:
    """Added, removed and retyped columns against the stream's last validated batch."""
    if previous is None or not files:
        return CheckResult("schema_drift", True, "no earlier validated batch to compare with")
    before = {c["name"]: c["type"] for c in previous}
    now = {c["name"]: c["type"] for c in batch_schema(files)}
    added = sorted(now.keys() - before.keys())
    removed = sorted(before.keys() - now.keys())
    retyped = sorted(f"{n} {before[n]} -> {now[n]}" for n in now.keys() & before.keys() if now[n] != before[n])
    if not (added or removed or retyped):
        return CheckResult("schema_drift", True, "same columns and types as the last validated batch")
    parts = [
        f"{label}: {', '.join(items)}"
        for label, items in (("added", added), ("removed", removed), ("retyped", retyped))
        if items
    ]
    return CheckResult("schema_drift", policy != "fail", f"{'; '.join(parts)} (policy {policy})", files[0][0])


def _check_files_listed(storage: LakeStorage, batch: StreamBatch) -> tuple[CheckResult, dict[str, int]]:
    """The objects under the stream prefix with this sync's key prefixes are exactly the batch's files
    (and the size of each listed object).

    A sync's keys carry the epoch its destination started at: one for the embedded engine, one per
    attempt on Airbyte (each attempt restarts the destination).
    """
    epochs = {int(batch.started_at.timestamp() * 1000)} | {
        epoch for part in batch.files if (epoch := data_file_epoch(part.key)) is not None
    }
    sizes: dict[str, int] = {}
    for obj in storage.list(batch.prefix):
        if is_data_file_of(obj.key, batch.prefix) and data_file_epoch(obj.key) in epochs:
            sizes[obj.key] = obj.size
    listed = set(sizes)
    expected = {part.key for part in batch.files}
    if missing := sorted(expected - listed):
        return CheckResult("files_listed", False, "file of this sync is missing from storage", missing[0]), sizes
    if extra := sorted(listed - expected):
        return CheckResult("files_listed", False, "unexpected file with this sync's key prefix", extra[0]), sizes
    return CheckResult("files_listed", True, f"{len(expected)} file(s) of this sync, no strays"), sizes


def _check_airbyte_columns(files: Iterable[tuple[str, pq.ParquetFile]]) -> CheckResult:
    for key, parquet in files:
        schema = parquet.schema_arrow
        expected = LEGACY_COLUMN_TYPES if "_airbyte_ab_id" in schema.names else AIRBYTE_COLUMN_TYPES
        for name, ok in expected.items():
            index = schema.get_field_index(name)
            if index < 0:
                return CheckResult("airbyte_columns", False, f"column {name} is missing", key)
            if not ok(schema.field(index).type):
                return CheckResult("airbyte_columns", False, f"column {name} has type {schema.field(index).type}", key)
    return CheckResult("airbyte_columns", True, "Airbyte columns present with their types")


def _check_row_count(files: list[tuple[str, pq.ParquetFile]], expected: Expected, policy: str) -> CheckResult:
    """The rows in the files' footers against a count from the engine or Airbyte, never from the files."""
    rows = sum(parquet.metadata.num_rows for _, parquet in files)
    last = files[-1][0] if files else None
    if expected.mismatch is not None:
        return CheckResult("row_count", False, expected.mismatch, last)
    if expected.rows is None:
        detail = (
            f"not reconciled: {expected.counted_by} reported no count; the files hold {rows} rows (policy {policy})"
        )
        return CheckResult("row_count", policy != "require", detail, last if policy == "require" else None)
    if rows != expected.rows:
        return CheckResult(
            "row_count", False, f"files hold {rows} rows, {expected.counted_by} counted {expected.rows}", last
        )
    return CheckResult("row_count", True, f"{rows} rows, as counted by {expected.counted_by}")
