"""The janitor: parts an embedded sync published before it died are found and removed; nothing else is."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lakehouse_ingest.bronze.janitor import _machine, _process_started, find_orphans, remove_orphans
from lakehouse_ingest.lake.documents import SyncOwner, write_document
from lakehouse_ingest.lake.keys import (
    damaged_manifest_key,
    data_key,
    manifest_key,
    quarantine_key,
    sync_owner_key,
    sync_owners_prefix,
)
from lakehouse_ingest.lake.local import LocalStorage

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def sync_at(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


def epoch(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path)
    for hours_ago, mark in ((50, "manifest"), (40, None), (30, "quarantine"), (20, None), (1, None)):
        started = sync_at(hours_ago)
        for part in (0, 1):
            storage.put_bytes(data_key("src", "users", started, part), b"PAR1")
        if mark == "manifest":
            storage.put_bytes(manifest_key("src", "users", epoch(started)), b"{}")
        elif mark == "quarantine":
            storage.put_bytes(quarantine_key("src", "users", epoch(started)), b"{}")
    storage.put_bytes("airbyte/src/users/notes.txt", b"foreign")  # not the engine's: never touched
    storage.put_bytes("airbyte/src/users/sub/2026_12_07_1_0.parquet", b"PAR1")  # not directly in the folder
    return storage


def test_orphans_are_the_unowned_parts_older_than_an_owned_sync_or_the_grace(lake: LocalStorage) -> None:
    found = find_orphans(lake, "src", NOW)
    assert sorted({o.sync_id for o in found}) == [epoch(sync_at(40))]  # 40 h: older than the quarantined 30 h sync
    assert len(found) == 2 and "sync" in found[0].why
    younger = find_orphans(lake, "src", NOW, grace=timedelta(hours=2))
    assert sorted({o.sync_id for o in younger}) == [epoch(sync_at(40)), epoch(sync_at(20))]  # the 1 h one may still run


def test_dry_run_lists_and_removal_removes_only_orphans(lake: LocalStorage, caplog: pytest.LogCaptureFixture) -> None:
    before = {o.key for o in lake.list("airbyte/src")}
    with caplog.at_level(logging.WARNING):
        listed = remove_orphans(lake, "src", NOW, dry_run=True)
    assert {o.key for o in lake.list("airbyte/src")} == before
    assert sum("would remove orphaned part" in r.getMessage() for r in caplog.records) == len(listed) == 2
    removed = remove_orphans(lake, "src", NOW)
    assert {o.key for o in lake.list("airbyte/src")} == before - {o.object.key for o in removed}
    assert find_orphans(lake, "src", NOW) == []


def test_a_manifest_set_aside_as_damaged_still_owns_its_files(lake: LocalStorage) -> None:
    damaged = epoch(sync_at(40))
    lake.put_bytes(damaged_manifest_key("src", "users", damaged), b'{"manifest_ver')
    assert find_orphans(lake, "src", NOW) == []


def owner(sync_id: int, pid: int, **overrides: object) -> SyncOwner:
    host, boot_id, namespace = _machine()
    fields = {"host": host, "boot_id": boot_id, "pid_namespace": namespace, "process_started": _process_started(pid)}
    return SyncOwner(sync_id=sync_id, started_at=NOW, pid=pid, **{**fields, **overrides})  # type: ignore[arg-type]


def test_a_sync_whose_process_ended_on_this_machine_is_an_orphan_at_once(lake: LocalStorage) -> None:
    ended = 2**22 + 7  # above Linux's pid_max default: no process has it
    young = epoch(sync_at(1))  # the newest sync, an hour old: kept by the other rules
    write_document(lake, sync_owner_key("src", young), owner(young, ended, process_started=42))
    assert {o.sync_id for o in find_orphans(lake, "src", NOW)} == {epoch(sync_at(40)), young}
    remove_orphans(lake, "src", NOW)
    assert not lake.list(sync_owners_prefix("src"))  # the record of an ended process goes with its parts


def test_a_running_sync_is_never_an_orphan_and_another_machine_cannot_tell(lake: LocalStorage) -> None:
    running = epoch(sync_at(40))  # older than a quarantined sync: an orphan by that rule alone
    write_document(lake, sync_owner_key("src", running), owner(running, os.getpid()))
    young = epoch(sync_at(1))
    write_document(lake, sync_owner_key("src", young), owner(young, 2**22 + 7, host="elsewhere", process_started=1))
    assert find_orphans(lake, "src", NOW) == []
    remove_orphans(lake, "src", NOW)
    assert len(lake.list(sync_owners_prefix("src"))) == 2
