"""Stored documents: typed, and the bytes in the lake exactly what earlier versions wrote (and read)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lakehouse_ingest.errors import DocumentError
from lakehouse_ingest.lake.documents import (
    ConnectorState,
    JobLedgerDoc,
    LastSuccess,
    Manifest,
    Quarantine,
    Report,
    read_document,
    write_document,
)
from lakehouse_ingest.lake.local import LocalStorage

STARTED = datetime(2026, 12, 7, 10, 0, 0, 123000, tzinfo=UTC)
BATCH = {
    "source": "shop",
    "stream": "users",
    "namespace": None,
    "sync_id": 5,
    "generation_id": 0,
    "started_at": STARTED.isoformat(),
    "prefix": "airbyte/shop/users",
    "sync_mode": "incremental",
    "destination_sync_mode": "append_dedup",
    "primary_key": [["id"]],
    "cursor_field": ["updated_at"],
}
FILES = [{"key": "airbyte/shop/users/2026_12_07_1796637600123_0.parquet", "rows": 3, "bytes": 10}]
CHECKS = [{"name": "row_count", "passed": True, "detail": "3 rows", "file": None}]
REPORT = {
    "source": "shop",
    "stream": "users",
    "sync_id": 5,
    "passed": False,
    "failure": "shop.users: check 'x' failed",
    "validated_at": STARTED.isoformat(),
    "rows": 3,
    "files": FILES,
    "checks": CHECKS,
}
# Each document as earlier versions wrote it (json.dumps of a dict, indent=2; the state with sorted keys).
WRITTEN_BEFORE = [
    (
        Manifest,
        {
            "manifest_version": 1,
            **BATCH,
            "validated_at": STARTED.isoformat(),
            "bronze_root": "s3://bronze",
            "rows": 3,
            "bytes": 10,
            "files": [{**FILES[0], "url": "s3://bronze/" + FILES[0]["key"]}],
            "schema": [{"name": "id", "type": "int64", "nullable": True}],
            "checks": CHECKS,
        },
        False,
    ),
    (Report, REPORT, False),
    (Quarantine, {**REPORT, "batch": {**BATCH, "records": 3, "files": FILES}}, False),
    (
        ConnectorState,
        {
            "stream_states": {"users": {"type": "STREAM"}},
            "shared_state": None,
            "generations": {"users": 2},
            "last_sync_id": 7,
        },
        True,
    ),
    (JobLedgerDoc, {"watermark": 3, "done": [5, 6]}, False),
    (LastSuccess, {"finished_at": STARTED.isoformat(), "sync_id": 9}, False),
]


@pytest.mark.parametrize(("model", "before", "sort_keys"), WRITTEN_BEFORE, ids=lambda v: getattr(v, "__name__", ""))
def test_documents_round_trip_byte_for_byte(model: type, before: dict, sort_keys: bool, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    old_bytes = json.dumps(before, indent=2, sort_keys=sort_keys).encode()
    storage.put_bytes("doc.json", old_bytes)
    document = read_document(storage, "doc.json", model)
    assert document is not None
    write_document(storage, "again.json", document)
    assert storage.get_bytes("again.json") == old_bytes


def test_a_missing_document_is_none_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert read_document(storage, "absent.json", LastSuccess) is None
    storage.put_bytes("_state/x/last_success.json", b'{"finished_at": "2026-12')
    with pytest.raises(DocumentError) as info:
        read_document(storage, "_state/x/last_success.json", LastSuccess)
    assert str(tmp_path / "_state/x/last_success.json") in str(info.value) and "LastSuccess" in str(info.value)


def test_unknown_keys_from_a_newer_writer_are_ignored(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("jobs.json", json.dumps({"watermark": 4, "done": [], "added_later": {"x": 1}}).encode())
    assert read_document(storage, "jobs.json", JobLedgerDoc) == JobLedgerDoc(watermark=4, done=[])
