"""A damaged document is named and set aside, never a wall: a truncated manifest of an earlier batch does not
block its stream's next batch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.bronze.manifest import load_manifest, manifest_sync_ids, previous_manifest, publish_manifest
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.errors import ConfigError, DocumentError
from lakehouse_ingest.lake.documents import Manifest, write_document
from lakehouse_ingest.lake.keys import damaged_manifest_key, manifest_key
from lakehouse_ingest.lake.local import LocalStorage


def batch(sync_id: int) -> StreamBatch:
    return StreamBatch(
        "shop",
        "users",
        None,
        sync_id,
        0,
        datetime.now(UTC),
        "airbyte/shop/users",
        "incremental",
        "append",
        [],
        [],
        pa.schema([]),
    )


def manifest(sync_id: int) -> Manifest:
    return Manifest(
        **batch(sync_id).description(), validated_at=datetime.now(UTC), bronze_root="/lake", rows=0, bytes=0
    )


def test_a_damaged_earlier_manifest_is_set_aside_and_the_one_before_it_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = LocalStorage(tmp_path)
    write_document(storage, manifest_key("shop", "users", 1), manifest(1))
    write_document(storage, manifest_key("shop", "users", 2), manifest(2))
    whole = storage.get_bytes(manifest_key("shop", "users", 2))
    storage.put_bytes(manifest_key("shop", "users", 2), whole[: len(whole) // 2])  # truncated

    with pytest.raises(DocumentError, match=str(tmp_path / manifest_key("shop", "users", 2))):
        load_manifest(storage, "shop", "users", 2)
    with caplog.at_level(logging.ERROR):
        found = previous_manifest(storage, batch(3))
    assert found is not None and found.sync_id == 1
    assert manifest_sync_ids(storage, "shop", "users") == {1}  # out of _manifests: never blocks again
    assert storage.get_bytes(damaged_manifest_key("shop", "users", 2)) == whole[: len(whole) // 2]  # kept, aside
    (record,) = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert "shop.users" in record.getMessage() and "_quarantine/2.damaged-manifest" in record.getMessage()


def _validated(sync_id: int) -> BatchValidation:
    return BatchValidation("shop", "users", sync_id, [CheckResult("row_count", True, "3 rows")])


def _with_files(sync_id: int, *keys: str) -> StreamBatch:
    published = batch(sync_id)
    published.files = [PublishedPart(key, 3, 100) for key in keys]
    published.records = 3 * len(keys)
    return published


def test_a_retried_hand_off_replaces_its_own_manifest(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    first = _with_files(7, "airbyte/shop/users/a.parquet")
    publish_manifest(storage, first, _validated(7))
    publish_manifest(storage, first, _validated(7))  # the event failed after the manifest was written: retried
    assert [f.key for f in load_manifest(storage, "shop", "users", 7).files] == ["airbyte/shop/users/a.parquet"]


def test_a_sync_id_used_twice_is_refused_naming_the_manifest_and_the_old_batch_stays(tmp_path: Path) -> None:
    """A reinstalled Airbyte server counts its jobs from 1 again: job 7's new files must not replace job 7's old
    manifest (silver would take the new batch for the old one, already applied, and drop its rows)."""
    storage = LocalStorage(tmp_path)
    publish_manifest(storage, _with_files(7, "airbyte/shop/users/old.parquet"), _validated(7))
    before = storage.get_bytes(manifest_key("shop", "users", 7))

    with pytest.raises(ConfigError) as refused:
        publish_manifest(storage, _with_files(7, "airbyte/shop/users/new.parquet"), _validated(7))
    message = str(refused.value)
    assert "\n" not in message
    assert "shop.users: sync 7 already has a manifest listing other files" in message
    assert str(tmp_path / manifest_key("shop", "users", 7)) in message and "used twice" in message
    assert storage.get_bytes(manifest_key("shop", "users", 7)) == before  # the old batch's manifest, untouched
