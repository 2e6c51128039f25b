"""Validation of one stream batch, before anything is handed on.

Built in, for every batch: exactly this sync's files are there (selected by key epoch, ignoring other
syncs, folder markers and foreign objects); each reads as Parquet; the Airbyte columns are present with
their types (destination ≥ 1.0: ``_airbyte_raw_id``, ``_airbyte_extracted_at``, ``_airbyte_meta``,
``_airbyte_generation_id``; or the legacy ``_airbyte_ab_id``, ``_airbyte_emitted_at``); the row count from
the footers (no data read) equals what the engine or Airbyte counted; every row carries this sync's id;
primary-key columns are never null; the schema against the last validated batch (drift policy). Then the
catalog's declarative rules (``rules``). Reading is by row group and by column: memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .catalog import StreamChecks
from .embedded import StreamBatch
from .layout import DATA_FILE
from .names import column_name
from .results import CheckResult
from .rules import evaluate
from .storage import LakeStorage


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
    result.checks.append(_check_files_listed(storage, batch))
    if not result.checks[-1].passed:
        return result
    files: list[tuple[str, pq.ParquetFile]] = []
    for part in batch.files:
        try:
            files.append((part.key, storage.open_parquet(part.key)))
        except (OSError, pa.ArrowException) as exc:
            result.checks.append(CheckResult("readable_parquet", False, _short(exc), part.key))
            return result
    result.checks.append(CheckResult("readable_parquet", True, f"{len(files)} file(s) open as Parquet"))
    result.checks.append(_check_airbyte_columns(files))
    if not result.checks[-1].passed:
        return result
    legacy = all("_airbyte_meta" not in p.schema_arrow.names for _, p in files) and bool(files)
    result.checks.append(_check_row_count(files, batch.records))
    if legacy:
        result.checks.append(CheckResult("sync_id", True, "legacy destination: batch isolated by its keys"))
    else:
        result.checks.append(_check_sync_id(files, batch.sync_id))
    result.checks.extend(_check_primary_key(files, batch.primary_key))
    checks = checks or StreamChecks()
    result.checks.append(_check_schema_drift(files, previous_schema, checks.schema_drift))
    if not result.passed:  # the data itself is in doubt: rules on it would only add noise
        return result
    rows = sum(p.metadata.num_rows for _, p in files)
    keys = [column_name(path[0]) for path in batch.primary_key if len(path) == 1]
    try:
        result.checks.extend(evaluate(files, rows, checks, keys))
    except (OSError, pa.ArrowException) as exc:
        result.checks.append(CheckResult("rules", False, f"data cannot be read: {_short(exc)}"))
    return result


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


def _check_files_listed(storage: LakeStorage, batch: StreamBatch) -> CheckResult:
    """The objects under the stream prefix with this sync's key prefixes are exactly the batch's files.

    A sync's keys carry the epoch its destination started at: one for the embedded engine, one per
    attempt on Airbyte (each attempt restarts the destination).
    """
    epochs = {str(int(batch.started_at.timestamp() * 1000))} | {
        m.group("epoch") for part in batch.files if (m := DATA_FILE.fullmatch(part.key.rsplit("/", 1)[-1]))
    }
    listed = set()
    for obj in storage.list(batch.prefix):
        match = DATA_FILE.fullmatch(obj.key.rsplit("/", 1)[-1])
        if match and match.group("epoch") in epochs and obj.key.count("/") == batch.prefix.count("/") + 1:
            listed.add(obj.key)
    expected = {part.key for part in batch.files}
    if missing := sorted(expected - listed):
        return CheckResult("files_listed", False, "file of this sync is missing from storage", missing[0])
    if extra := sorted(listed - expected):
        return CheckResult("files_listed", False, "unexpected file with this sync's key prefix", extra[0])
    return CheckResult("files_listed", True, f"{len(expected)} file(s) of this sync, no strays")


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


def _check_row_count(files: list[tuple[str, pq.ParquetFile]], expected: int) -> CheckResult:
    rows = sum(parquet.metadata.num_rows for _, parquet in files)
    if rows != expected:
        last = files[-1][0] if files else None
        return CheckResult("row_count", False, f"files hold {rows} rows, the engine counted {expected}", last)
    return CheckResult("row_count", True, f"{rows} rows, as counted by the engine")


def _check_sync_id(files: list[tuple[str, pq.ParquetFile]], sync_id: int) -> CheckResult:
    for key, parquet in files:
        for group in range(parquet.num_row_groups):
            try:
                meta = parquet.read_row_group(group, columns=["_airbyte_meta"]).column(0).combine_chunks()
            except (OSError, pa.ArrowException) as exc:
                return CheckResult("sync_id", False, f"row group {group} cannot be read: {_short(exc)}", key)
            ids = meta.field("sync_id") if meta.null_count == 0 else None
            if ids is None or ids.null_count:
                return CheckResult("sync_id", False, "rows without _airbyte_meta.sync_id", key)
            low, high = pc.min_max(ids).values()
            if low.as_py() != sync_id or high.as_py() != sync_id:
                return CheckResult("sync_id", False, f"sync ids {low.as_py()}..{high.as_py()}, expected {sync_id}", key)
    return CheckResult("sync_id", True, f"every row carries sync id {sync_id}")


def _check_primary_key(files: list[tuple[str, pq.ParquetFile]], primary_key: list[list[str]]) -> list[CheckResult]:
    results = []
    for path in primary_key:
        column = ".".join(column_name(p) for p in path)
        results.append(_check_not_null(files, column))
    return results


def _check_not_null(files: list[tuple[str, pq.ParquetFile]], column: str) -> CheckResult:
    name = f"primary_key_not_null({column})"
    top = column.split(".")[0]
    for key, parquet in files:
        if parquet.schema_arrow.get_field_index(top) < 0:
            return CheckResult(name, False, f"primary-key column {column} is missing", key)
        for group in range(parquet.num_row_groups):
            try:
                values = parquet.read_row_group(group, columns=[top]).column(0).combine_chunks()
            except (OSError, pa.ArrowException) as exc:
                return CheckResult(name, False, f"row group {group} cannot be read: {_short(exc)}", key)
            for part in column.split(".")[1:]:
                values = pc.struct_field(values, part) if pa.types.is_struct(values.type) else values
            if values.null_count:
                return CheckResult(name, False, f"{values.null_count} null value(s) in row group {group}", key)
    return CheckResult(name, True, f"{column} is never null")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
