"""validate_batch on real Parquet parts, published through the real storage (local directory and SeaweedFS S3)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_COLUMN_NAMES, stream_columns
from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.bronze.checks.validate import BatchValidation, reconcile, validate_batch
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.catalog.sources import StreamChecks
from lakehouse_ingest.lake.keys import data_key, manifest_key, stream_prefix
from lakehouse_ingest.lake.s3 import S3Storage
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.embedded.records import RecordConverter

SOURCE = "shop"
STREAM = "orders"
JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
COLUMNS = stream_columns(JSON_SCHEMA)
# Millisecond precision, and the sync id is its epoch in ms: what the engine derives (embedded.py).
STARTED_AT = datetime(2024, 5, 17, 8, 30, 12, 345_000, tzinfo=UTC)
SYNC_ID = int(STARTED_AT.timestamp() * 1000)
ROW_GROUP_ROWS = 2  # several row groups per part, so the per-row-group reads are exercised
BUILT_IN_CHECKS = [
    "files_listed",
    "readable_parquet",
    "airbyte_columns",
    "row_count",
    "sync_id",
    "generation_id",
    "primary_key_not_null(id)",
    "schema_drift",
]
# The declarative rules run after the built-in checks, only when those passed (every batch gets these two).
ALL_CHECKS = [*BUILT_IN_CHECKS, "primary_key_unique", "airbyte_changes"]


def record_lines(ids: Iterable[int | None]) -> list[bytes]:
    """Protocol RECORD lines of the stream, one per id (None gives a record whose id is null)."""
    emitted_at = SYNC_ID + 1_000
    return [
        json.dumps(
            {
                "type": "RECORD",
                "record": {
                    "stream": STREAM,
                    "data": {"id": i, "name": f"name-{i}", "updated_at": "2024-05-17T08:00:00Z"},
                    "emitted_at": emitted_at,
                },
            }
        ).encode()
        for i in ids
    ]


def part_table(ids: Iterable[int | None], sync_id: int = SYNC_ID, generation_id: int = 0) -> pa.Table:
    """The rows of one part, converted exactly as the engine converts them."""
    table = RecordConverter(STREAM, COLUMNS, sync_id=sync_id, generation_id=generation_id).convert(record_lines(ids))
    assert table.schema == COLUMNS.arrow_schema
    return table


def default_parts() -> list[pa.Table]:
    return [part_table(range(4)), part_table(range(4, 7))]


def publish_table(
    storage: LakeStorage, staging: Path, table: pa.Table, key: str, row_group_rows: int = ROW_GROUP_ROWS
) -> PublishedPart:
    """Write ``table`` to a local Parquet file and publish it at ``key`` through the storage."""
    staging.mkdir(parents=True, exist_ok=True)
    local = staging / f"{uuid.uuid4().hex}.parquet"
    pq.write_table(table, local, row_group_size=row_group_rows)
    size = storage.publish_file(local, key)
    return PublishedPart(key, table.num_rows, size)


def build_batch(
    storage: LakeStorage,
    staging: Path,
    parts: Sequence[pa.Table] | None = None,
    *,
    records: int | None = None,
    generation_id: int = 0,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> StreamBatch:
    """Publish ``parts`` at this sync's data keys and describe them as the engine would."""
    tables = default_parts() if parts is None else list(parts)
    files = [
        publish_table(storage, staging, table, data_key(SOURCE, STREAM, STARTED_AT, number), row_group_rows)
        for number, table in enumerate(tables)
    ]
    return StreamBatch(
        source=SOURCE,
        stream=STREAM,
        namespace=None,
        sync_id=SYNC_ID,
        generation_id=generation_id,
        started_at=STARTED_AT,
        prefix=stream_prefix(SOURCE, STREAM),
        sync_mode="incremental",
        destination_sync_mode="append",
        primary_key=[["id"]],
        cursor_field=["updated_at"],
        schema=COLUMNS.arrow_schema,
        records=sum(t.num_rows for t in tables) if records is None else records,
        files=files,
    )


def assert_failed(result: BatchValidation, name: str, key: str | None) -> CheckResult:
    """``name`` is the one failed check, it names ``key``, and ``failure`` says so on one line."""
    assert not result.passed
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == [name], result.checks
    check = failed[0]
    assert check.file == key
    failure = result.failure
    assert failure is not None
    assert "\n" not in failure
    assert f"{SOURCE}.{STREAM}" in failure
    assert f"'{name}'" in failure
    if key is not None:
        assert key in failure
    assert check.detail in failure
    return check


@pytest.mark.parametrize("parts", [1, 2])
def test_valid_batch_passes_every_check(storage: LakeStorage, tmp_path: Path, parts: int) -> None:
    tables = [part_table(range(5))] if parts == 1 else default_parts()
    batch = build_batch(storage, tmp_path / "staging", tables)
    assert len(batch.files) == parts
    assert all(storage.open_parquet(f.key).num_row_groups > 1 for f in batch.files)

    result = validate_batch(storage, batch)

    assert [c.name for c in result.checks] == ALL_CHECKS
    assert all(c.passed for c in result.checks), result.checks
    assert result.passed
    assert result.failure is None
    assert (result.source, result.stream, result.sync_id) == (SOURCE, STREAM, SYNC_ID)


@pytest.mark.parametrize("damage", ["half", "not-parquet"])
def test_corrupt_part_fails_readable_parquet(storage: LakeStorage, tmp_path: Path, damage: str) -> None:
    batch = build_batch(storage, tmp_path / "staging")
    bad = batch.files[1].key
    original = storage.get_bytes(bad)
    storage.put_bytes(bad, original[: len(original) // 2] if damage == "half" else b"not parquet")

    result = validate_batch(storage, batch)

    check = assert_failed(result, "readable_parquet", bad)
    assert check.detail
    # Nothing is checked after a file that cannot be read.
    assert [c.name for c in result.checks] == ["files_listed", "readable_parquet"]


def without_statistics(storage: LakeStorage, keys: Iterable[str], row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """Rewrite the parts in place without footer statistics, so every check has to read the data."""
    for key in keys:
        buffer = io.BytesIO()
        table = storage.open_parquet(key).read()
        pq.write_table(table, buffer, row_group_size=row_group_rows, write_statistics=False)
        storage.put_bytes(key, buffer.getvalue())
        metadata = storage.open_parquet(key).metadata
        assert all(metadata.row_group(0).column(i).statistics is None for i in range(metadata.num_columns))


def corrupt_column(storage: LakeStorage, key: str, leaf: str) -> None:
    """Flip every byte of row group 0's pages of ``leaf``: the footer still reads, the column does not."""
    data = bytearray(storage.get_bytes(key))
    row_group = storage.open_parquet(key).metadata.row_group(0)
    chunk = next(
        row_group.column(i) for i in range(row_group.num_columns) if row_group.column(i).path_in_schema == leaf
    )
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    for offset in range(start, start + chunk.total_compressed_size):
        data[offset] ^= 0xFF
    storage.put_bytes(key, bytes(data))
    assert storage.open_parquet(key).metadata.num_rows  # the footer is intact


@pytest.mark.parametrize(
    ("leaf", "check_name"), [("_airbyte_meta.sync_id", "sync_id"), ("id", "primary_key_not_null(id)")]
)
def test_part_with_corrupt_column_data_fails_instead_of_raising(
    storage: LakeStorage, tmp_path: Path, leaf: str, check_name: str
) -> None:
    """Without footer statistics the built-in check reads the column: a failed check, not an exception."""
    batch = build_batch(storage, tmp_path / "staging")
    bad = batch.files[1].key
    without_statistics(storage, [f.key for f in batch.files])
    corrupt_column(storage, bad, leaf)

    result = validate_batch(storage, batch)

    check = assert_failed(result, check_name, bad)
    assert "row group 0 cannot be read" in check.detail
    assert [c.name for c in result.checks] == BUILT_IN_CHECKS


@pytest.mark.parametrize(
    ("leaf", "check_name"), [("_airbyte_meta.sync_id", "airbyte_changes"), ("id", "primary_key_unique")]
)
def test_corrupt_column_decided_by_statistics_fails_the_check_that_reads_it(
    storage: LakeStorage, tmp_path: Path, leaf: str, check_name: str
) -> None:
    """The footers prove the sync id and the non-null keys, but the rules that read the column report it."""
    batch = build_batch(storage, tmp_path / "staging")
    bad = batch.files[1].key
    corrupt_column(storage, bad, leaf)

    result = validate_batch(storage, batch)

    check = assert_failed(result, check_name, bad)
    assert "row group 0 cannot be read" in check.detail
    assert [c.name for c in result.checks] == ALL_CHECKS


@pytest.mark.parametrize("records", [6, 8, 0])
def test_engine_count_differs_from_rows_fails_row_count(storage: LakeStorage, tmp_path: Path, records: int) -> None:
    batch = build_batch(storage, tmp_path / "staging", records=records)

    result = validate_batch(storage, batch)

    check = assert_failed(result, "row_count", batch.files[-1].key)
    assert "7 rows" in check.detail
    assert f"counted {records}" in check.detail
    assert [c.name for c in result.checks] == BUILT_IN_CHECKS  # the other built-in checks still ran, and passed


@pytest.mark.parametrize("other", [SYNC_ID - 86_400_000, SYNC_ID + 1], ids=["earlier sync", "later sync"])
@pytest.mark.parametrize("where", ["whole part", "one row"])
def test_part_of_another_sync_fails_sync_id(storage: LakeStorage, tmp_path: Path, where: str, other: int) -> None:
    if where == "whole part":
        second = part_table(range(4, 7), sync_id=other)
    else:
        # Row group 0 of the part holds one row of each sync.
        second = pa.concat_tables([part_table([4]), part_table([5], sync_id=other), part_table([6])])
    batch = build_batch(storage, tmp_path / "staging", [part_table(range(4)), second])
    ids = storage.open_parquet(batch.files[1].key).read(columns=["_airbyte_meta"]).column(0).to_pylist()
    assert other in {m["sync_id"] for m in ids}  # the file really carries the other id

    result = validate_batch(storage, batch)

    check = assert_failed(result, "sync_id", batch.files[1].key)
    assert str(other) in check.detail
    assert f"expected {SYNC_ID}" in check.detail


@pytest.mark.parametrize("column", AIRBYTE_COLUMN_NAMES)
def test_missing_airbyte_column_fails_airbyte_columns(storage: LakeStorage, tmp_path: Path, column: str) -> None:
    first, second = default_parts()
    batch = build_batch(storage, tmp_path / "staging", [first, second.drop_columns([column])])
    assert column not in storage.open_parquet(batch.files[1].key).schema_arrow.names

    result = validate_batch(storage, batch)

    check = assert_failed(result, "airbyte_columns", batch.files[1].key)
    assert column in check.detail
    assert "missing" in check.detail
    assert column in (result.failure or "")
    assert result.checks[-1] is check  # later checks need the columns: not run


def test_airbyte_column_of_wrong_type_fails_airbyte_columns(storage: LakeStorage, tmp_path: Path) -> None:
    first, second = default_parts()
    index = second.schema.get_field_index("_airbyte_generation_id")
    second = second.set_column(
        index, pa.field("_airbyte_generation_id", pa.int32()), second.column(index).cast(pa.int32())
    )
    batch = build_batch(storage, tmp_path / "staging", [first, second])

    result = validate_batch(storage, batch)

    check = assert_failed(result, "airbyte_columns", batch.files[1].key)
    assert "_airbyte_generation_id" in check.detail
    assert "int32" in check.detail


def test_extracted_at_as_epoch_millis_passes(storage: LakeStorage, tmp_path: Path) -> None:
    """Older destinations store ``_airbyte_extracted_at`` as int64 epoch-ms instead of a timestamp."""
    parts = []
    for table in default_parts():
        index = table.schema.get_field_index("_airbyte_extracted_at")
        millis = table.column(index).cast(pa.int64())
        parts.append(table.set_column(index, pa.field("_airbyte_extracted_at", pa.int64(), False), millis))
    batch = build_batch(storage, tmp_path / "staging", parts)
    stored = storage.open_parquet(batch.files[0].key)
    assert stored.schema_arrow.field("_airbyte_extracted_at").type == pa.int64()
    assert stored.read(columns=["_airbyte_extracted_at"]).column(0)[0].as_py() == SYNC_ID + 1_000

    result = validate_batch(storage, batch)

    assert result.passed, result.failure
    assert [c.name for c in result.checks] == ALL_CHECKS


def test_null_primary_key_fails_primary_key_not_null(storage: LakeStorage, tmp_path: Path) -> None:
    # Rows 4, 5 form row group 0 of the second part; the null is alone in row group 1.
    batch = build_batch(storage, tmp_path / "staging", [part_table(range(4)), part_table([4, 5, None])])
    assert storage.open_parquet(batch.files[1].key).read(columns=["id"]).column(0).null_count == 1

    result = validate_batch(storage, batch)

    check = assert_failed(result, "primary_key_not_null(id)", batch.files[1].key)
    assert "1 null value(s) in row group 1" in check.detail


@pytest.mark.parametrize("stray", ["next part", "suffixed part"])
def test_stray_file_of_this_sync_fails_files_listed(storage: LakeStorage, tmp_path: Path, stray: str) -> None:
    batch = build_batch(storage, tmp_path / "staging")
    if stray == "next part":
        key = data_key(SOURCE, STREAM, STARTED_AT, 2)
    else:  # Airbyte's duplicate-name suffix (``..._0-1.parquet``) still belongs to this sync
        key = data_key(SOURCE, STREAM, STARTED_AT, 0).replace("_0.parquet", "_0-1.parquet")
    publish_table(storage, tmp_path / "staging", part_table([99]), key)

    result = validate_batch(storage, batch)

    check = assert_failed(result, "files_listed", key)
    assert "unexpected" in check.detail
    assert [c.name for c in result.checks] == ["files_listed"]


def test_listed_file_missing_from_storage_fails_files_listed(storage: LakeStorage, tmp_path: Path) -> None:
    batch = build_batch(storage, tmp_path / "staging")
    gone = batch.files[0].key
    storage.delete(gone)
    assert not storage.exists(gone)

    result = validate_batch(storage, batch)

    check = assert_failed(result, "files_listed", gone)
    assert "missing" in check.detail
    assert [c.name for c in result.checks] == ["files_listed"]


def test_objects_of_other_syncs_markers_and_manifests_are_ignored(
    storage: LakeStorage, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    staging = tmp_path / "staging"
    batch = build_batch(storage, staging)
    others = [
        data_key(SOURCE, STREAM, STARTED_AT - timedelta(days=1), 0),  # yesterday's sync
        data_key(SOURCE, STREAM, STARTED_AT + timedelta(milliseconds=1), 0),  # same day, next ms
        data_key(SOURCE, STREAM, STARTED_AT - timedelta(milliseconds=1), 2),
        data_key(SOURCE, f"{STREAM}2", STARTED_AT, 5),  # a sibling stream, same sync
        # Named like a part of this sync, but in a sub-folder of the stream: not one of its files.
        f"{batch.prefix}/_manifests/{data_key(SOURCE, STREAM, STARTED_AT, 5).rsplit('/', 1)[-1]}",
    ]
    for key in others:
        publish_table(storage, staging, part_table([100]), key)
    storage.put_bytes(f"{batch.prefix}/_manifests/x.json", b"{}")
    storage.put_bytes(manifest_key(SOURCE, STREAM, SYNC_ID), b"{}")
    if isinstance(storage, S3Storage):
        client = request.getfixturevalue("s3").boto3_client()
        markers = [f"{storage.prefix}/{batch.prefix}/", f"{storage.prefix}/{batch.prefix}/_manifests/"]
        for marker in markers:
            client.put_object(Bucket=storage.bucket, Key=marker, Body=b"")
        present = client.list_objects_v2(Bucket=storage.bucket, Prefix=f"{storage.prefix}/")
        assert set(markers) <= {item["Key"] for item in present["Contents"]}
    listed = {o.key for o in storage.list("airbyte")}
    assert set(others) <= listed
    assert len(listed) == len(others) + len(batch.files) + 2

    result = validate_batch(storage, batch)

    assert result.passed, result.failure
    assert [c.name for c in result.checks] == ALL_CHECKS
    assert result.checks[0].detail == "2 file(s) of this sync, no strays"


def test_failure_is_one_line_naming_stream_check_and_file(storage: LakeStorage, tmp_path: Path) -> None:
    batch = build_batch(storage, tmp_path / "staging", [part_table(range(4)), part_table([4, None])])
    key = batch.files[1].key

    failure = validate_batch(storage, batch).failure

    assert failure is not None
    assert failure.splitlines() == [failure]
    assert failure.startswith(f"{SOURCE}.{STREAM}: ")
    assert "primary_key_not_null(id)" in failure
    assert failure.count(key) == 1
    # A multi-line exception text (a corrupt footer) still gives one line.
    storage.put_bytes(key, b"not parquet")
    failure = validate_batch(storage, batch).failure
    assert failure is not None
    assert failure.splitlines() == [failure]
    assert "readable_parquet" in failure
    assert key in failure


# -- decided from footer statistics, or read when the footers do not decide ------------------------------


@pytest.mark.parametrize("statistics", [True, False], ids=["footer statistics", "data read"])
@pytest.mark.parametrize("where", ["whole part", "one row"])
def test_generation_id_of_another_generation_fails(
    storage: LakeStorage, tmp_path: Path, statistics: bool, where: str
) -> None:
    """A full-refresh overwrite (generation 3) must hold only rows of its own generation."""
    if where == "whole part":
        second = part_table(range(4, 7), generation_id=2)
    else:
        second = pa.concat_tables([part_table([4], generation_id=3), part_table([5], generation_id=2)])
    batch = build_batch(storage, tmp_path / "staging", [part_table(range(4), generation_id=3), second], generation_id=3)
    if not statistics:
        without_statistics(storage, [f.key for f in batch.files])

    result = validate_batch(storage, batch)

    check = assert_failed(result, "generation_id", batch.files[1].key)
    assert check.detail == (
        "generation ids 2..2, expected 3" if where == "whole part" else "generation ids 2..3, expected 3"
    )
    assert [c.name for c in result.checks] == BUILT_IN_CHECKS


@pytest.mark.parametrize("statistics", [True, False], ids=["footer statistics", "data read"])
def test_generation_id_of_the_batch_passes(storage: LakeStorage, tmp_path: Path, statistics: bool) -> None:
    parts = [part_table(range(4), generation_id=5), part_table(range(4, 7), generation_id=5)]
    batch = build_batch(storage, tmp_path / "staging", parts, generation_id=5)
    if not statistics:
        without_statistics(storage, [f.key for f in batch.files])

    result = validate_batch(storage, batch)

    assert result.passed, result.failure
    assert [c.name for c in result.checks] == ALL_CHECKS
    assert next(c for c in result.checks if c.name == "generation_id").detail == "every row carries generation id 5"


def test_generation_id_decided_by_statistics_reads_no_data(storage: LakeStorage, tmp_path: Path) -> None:
    """With footer statistics the generation id needs no column read: corrupt pages of that column (which no
    other check reads) then go unnoticed, proving they were not read."""
    batch = build_batch(storage, tmp_path / "staging")
    bad = batch.files[1].key
    corrupt_column(storage, bad, "_airbyte_generation_id")

    result = validate_batch(storage, batch)

    assert result.passed, result.failure
    assert [c.name for c in result.checks] == ALL_CHECKS


@pytest.mark.parametrize("leaf", ["_airbyte_generation_id", "name"])
def test_verify_data_catches_corrupt_pages_no_other_check_reads(
    storage: LakeStorage, tmp_path: Path, leaf: str
) -> None:
    """``verify_data`` decodes every column: the generation id (decided by statistics) and a column no check
    names are read too, so their corrupt pages fail validation instead of silver's merge."""
    batch = build_batch(storage, tmp_path / "staging")
    bad = batch.files[1].key
    corrupt_column(storage, bad, leaf)
    assert validate_batch(storage, batch).passed  # unread without verify_data (the default)

    result = validate_batch(storage, batch, StreamChecks(verify_data=True))

    check = assert_failed(result, "decodable", bad)
    assert check.detail.startswith("row group 0 cannot be read")


def test_verify_data_passes_a_sound_batch_and_counts_what_it_decoded(storage: LakeStorage, tmp_path: Path) -> None:
    batch = build_batch(storage, tmp_path / "staging")
    columns = len(storage.open_parquet(batch.files[0].key).schema_arrow)

    result = validate_batch(storage, batch, StreamChecks(verify_data=True))

    assert result.passed, result.failure
    decodable = next(c for c in result.checks if c.name == "decodable")
    assert decodable.detail == f"{columns} column(s) of {batch.records} row(s) decoded"


@pytest.mark.parametrize("statistics", [True, False], ids=["footer statistics", "data read"])
def test_null_primary_key_is_found_with_and_without_statistics(
    storage: LakeStorage, tmp_path: Path, statistics: bool
) -> None:
    batch = build_batch(storage, tmp_path / "staging", [part_table(range(4)), part_table([4, 5, None])])
    if not statistics:
        without_statistics(storage, [f.key for f in batch.files])

    result = validate_batch(storage, batch)

    check = assert_failed(result, "primary_key_not_null(id)", batch.files[1].key)
    assert check.detail == "1 null value(s) in row group 1"


@pytest.mark.parametrize("statistics", [True, False], ids=["footer statistics", "data read"])
def test_one_row_of_another_sync_fails_with_and_without_statistics(
    storage: LakeStorage, tmp_path: Path, statistics: bool
) -> None:
    other = SYNC_ID + 5
    second = pa.concat_tables([part_table([4]), part_table([5]), part_table([6], sync_id=other)])
    batch = build_batch(storage, tmp_path / "staging", [part_table(range(4)), second])
    if not statistics:
        without_statistics(storage, [f.key for f in batch.files])

    result = validate_batch(storage, batch)

    check = assert_failed(result, "sync_id", batch.files[1].key)
    assert check.detail == f"sync ids {other}..{other}, expected {SYNC_ID}"  # row group 1 holds only that row


# -- reconciliation: footers only, fetched concurrently ----------------------------------------------------


def many_parts(storage: LakeStorage, staging: Path, count: int) -> StreamBatch:
    return build_batch(storage, staging, [part_table([2 * n, 2 * n + 1]) for n in range(count)])


def test_reconcile_counts_rows_of_many_files_from_their_footers(storage: LakeStorage, tmp_path: Path) -> None:
    batch = many_parts(storage, tmp_path / "staging", 40)

    results = reconcile(storage, batch)

    assert [(c.name, c.passed) for c in results] == [
        ("files_listed", True),
        ("readable_parquet", True),
        ("row_count", True),
    ]
    assert results[1].detail == "40 file(s) open as Parquet"
    assert results[2].detail == "80 rows, as counted by the engine"
    assert validate_batch(storage, batch).passed


def test_reconcile_names_the_first_unreadable_file_and_a_miscount(storage: LakeStorage, tmp_path: Path) -> None:
    batch = many_parts(storage, tmp_path / "staging", 30)
    for number in (17, 23):  # two bad files: the first in batch order is named
        storage.put_bytes(batch.files[number].key, b"not parquet")

    results = reconcile(storage, batch)

    assert [(c.name, c.passed, c.file) for c in results] == [
        ("files_listed", True, None),
        ("readable_parquet", False, batch.files[17].key),
    ]
    assert validate_batch(storage, batch).failure == (
        f"{SOURCE}.{STREAM}: check 'readable_parquet' failed in {batch.files[17].key}: {results[1].detail}"
    )

    miscounted = many_parts(storage, tmp_path / "again", 30)
    miscounted.records += 1
    (*_, count) = reconcile(storage, miscounted)
    assert (count.name, count.passed, count.detail) == ("row_count", False, "files hold 60 rows, the engine counted 61")
