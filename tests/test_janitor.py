"""The janitor: parts an embedded sync published before it died are found and removed; nothing else is."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from lakehouse_ingest.bronze.janitor import (
    Kind,
    _machine,
    _process_started,
    clean_source,
    find_orphans,
    remove_orphans,
)
from lakehouse_ingest.errors import StorageError
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
    assert {o.key for o in lake.list("airbyte/src")} == before - {o.key for o in removed}
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


def run_janitor(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m flows.bronze --janitor ...`` (the real entry point) on the local lake under ``tmp_path``, with a
    TMPDIR of its own (connector folders live there)."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {"name": "src", "connector": {"package": "airbyte-source-fake", "version": "0.0.1"}, "config": {}},
                    {"name": "shop", "connection_id": "2f6c1e2a-0000-4000-8000-000000000001"},
                ]
            }
        )
    )
    args = ["--catalog", str(catalog), "--bronze", str(tmp_path / "bronze"), "--silver", str(tmp_path / "silver")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run(
        [sys.executable, "-m", "flows.bronze", "--janitor", *args, *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "catalog.yaml"}


def test_janitor_command_lists_then_removes_exactly_what_dead_syncs_left(tmp_path: Path) -> None:
    """``--janitor --dry-run`` lists, ``--janitor`` removes: the parts of a sync whose process ended and of one older
    than the grace, the records of ended processes, staging and connector folders of dead processes; never what a
    manifest owns, what a running process owns, a young sync nobody can place, another host's staging or a file
    that is not the engine's."""
    bronze = LocalStorage(tmp_path / "bronze")
    now = datetime.now(UTC)
    dead, host = 2**22 + 7, socket.gethostname()  # above Linux's pid_max default: no process has it

    def sync(hours_ago: float, mark: bool = False, pid: int | None = None) -> tuple[int, list[str]]:
        started = now - timedelta(hours=hours_ago)
        keys = [data_key("src", "users", started, part) for part in (0, 1)]
        for key in keys:
            bronze.put_bytes(key, b"PAR1")
        if mark:
            bronze.put_bytes(manifest_key("src", "users", epoch(started)), b"{}")
            keys.append(manifest_key("src", "users", epoch(started)))
        if pid is not None:
            record = owner(epoch(started), pid, process_started=42 if pid == dead else _process_started(pid))
            write_document(bronze, sync_owner_key("src", epoch(started)), record)
        return epoch(started), keys

    handed_off, handed_off_files = sync(3, mark=True, pid=dead)  # done: its parts stay, its record goes
    ended, ended_parts = sync(2, pid=dead)  # killed on this machine: an orphan at once
    running, running_parts = sync(1, pid=os.getpid())  # this test's process runs it: kept
    _, stale_parts = sync(30)  # no record, older than the grace (and than a marked sync): an orphan
    _, young_parts = sync(0.2)  # no record, newer than every marked sync, within the grace: may still run elsewhere
    foreign = ["airbyte/src/users/notes.txt", "airbyte/src/users/sub/2026_12_07_1_0.parquet"]
    for key in foreign:
        bronze.put_bytes(key, b"foreign")
    staging = tmp_path / "bronze" / ".staging"
    for name in (f"sync-{dead}~{host}~a1", f"sync-{os.getpid()}~{host}~b2", f"sync-{dead}~elsewhere~c3"):
        (staging / name).mkdir(parents=True)
        (staging / name / "part.parquet").write_bytes(b"half")
    connectors = tmp_path / "tmp" / f"airbyte-lakehouse-{os.getuid()}"
    for name in (f"{dead}-x1", f"{os.getpid()}-y2"):
        (connectors / name).mkdir(parents=True)
        (connectors / name / "config.json").write_text('{"api_key": "s3cr3t"}')

    before = files_under(tmp_path)
    records = {f"_state/airbyte/src/syncs/{i}.json" for i in (handed_off, ended, running)}
    gone = {
        *ended_parts,
        *stale_parts,
        f"_state/airbyte/src/syncs/{handed_off}.json",
        f"_state/airbyte/src/syncs/{ended}.json",
    }
    gone_local = {
        f"bronze/.staging/sync-{dead}~{host}~a1/part.parquet",
        f"tmp/airbyte-lakehouse-{os.getuid()}/{dead}-x1/config.json",
    }
    assert {f"bronze/{k}" for k in gone} | gone_local <= before
    assert records <= {f.removeprefix("bronze/") for f in before}

    listed = run_janitor(tmp_path, "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert files_under(tmp_path) == before  # nothing removed
    lines = listed.stdout.splitlines()
    assert all(line.startswith(("src: would remove ", "would remove ")) for line in lines), lines
    assert len(lines) == len(gone) + len(gone_local) == 8, lines
    for key in gone:
        assert sum(str(bronze.root / key) in line for line in lines) == 1, (key, lines)
    assert any(f"would remove staging folder {staging}/sync-{dead}~{host}~a1 " in line for line in lines), lines
    assert any(f"would remove connector config folder {connectors}/{dead}-x1 " in line for line in lines), lines
    assert f"src: would remove orphaned part {bronze.root / ended_parts[0]} (sync {ended} " in listed.stdout
    assert "shop: left alone (an Airbyte-server source" in listed.stderr
    assert (
        "janitor: 4 orphaned part(s), 2 sync record(s), 1 staging folder(s), 1 connector config folder(s)"
        in listed.stderr
    )

    removed = run_janitor(tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines() == [line.replace("would remove ", "removed ", 1) for line in lines]
    after = files_under(tmp_path)
    assert after == before - {f"bronze/{k}" for k in gone} - gone_local
    kept = {*handed_off_files, *running_parts, *young_parts, *foreign, f"_state/airbyte/src/syncs/{running}.json"}
    assert {f"bronze/{k}" for k in kept} <= after
    assert {
        f"bronze/.staging/sync-{os.getpid()}~{host}~b2/part.parquet",
        f"bronze/.staging/sync-{dead}~elsewhere~c3/part.parquet",
    } <= after

    again = run_janitor(tmp_path, "--source", "src")
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    assert "janitor: nothing removed" in again.stderr and "shop" not in again.stderr


def test_janitor_command_refuses_an_unknown_source_and_removes_nothing(tmp_path: Path) -> None:
    bronze = LocalStorage(tmp_path / "bronze")
    orphan = data_key("src", "users", datetime.now(UTC) - timedelta(hours=30), 0)
    bronze.put_bytes(orphan, b"PAR1")
    refused = run_janitor(tmp_path, "--source", "nope")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == "error: unknown source 'nope'; the catalog has: src, shop"
    assert (bronze.root / orphan).exists()
    wrong = run_janitor(tmp_path, "--force")
    assert wrong.returncode == 2 and "--janitor syncs nothing" in wrong.stderr and (bronze.root / orphan).exists()


def test_a_part_that_cannot_be_removed_is_reported_and_keeps_its_record(lake: LocalStorage) -> None:
    class Refusing(LocalStorage):
        def delete(self, key: str) -> None:
            if key.endswith("_0.parquet"):
                raise StorageError(f"cannot remove {key}: the store said no")
            super().delete(key)

    ended = epoch(sync_at(20))
    write_document(lake, sync_owner_key("src", ended), owner(ended, 2**22 + 7, process_started=42))
    found = clean_source(Refusing(lake.root), "src", NOW)
    failed = [item for item in found if item.error]
    assert {item.kind for item in failed} == {Kind.PART} and len(failed) == 2  # part 0 of two syncs
    assert all("the store said no" in (item.error or "") for item in failed)
    assert [o.key for o in lake.list("airbyte/src/users") if o.key.endswith("_1.parquet")] == [
        data_key("src", "users", sync_at(h), 1) for h in (50, 30, 1)
    ]  # the other parts of both orphaned syncs were removed all the same
    assert lake.list(sync_owners_prefix("src")), "kept: its sync still has a part to remove"
