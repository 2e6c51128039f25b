"""Parts no batch owns: what an embedded sync published before it died, found and removed.

The embedded engine publishes a stream's Parquet parts as it reads, then validates the batch and writes its
manifest (or its quarantine mark) last. A sync that fails removes its parts itself; one that is killed (``kill -9``,
an out-of-memory kill, a lost machine) cannot, and its parts stay in the stream's folder with no manifest. Silver
never reads them (it reads manifests, never listings), and the next sync's validation ignores them (other sync ids),
but anyone reading the raw folder would count them. A file is an orphan when all of these hold:

- it is one of the engine's data files directly in an embedded source's stream folder (Airbyte-server sources are
  left alone: their files belong to Airbyte jobs, which the job ledger hands off);
- no manifest and no quarantine mark of that folder is for its sync (the epoch in its name is the sync id); a
  manifest set aside as damaged (``_quarantine/<sync_id>.damaged-manifest``) still owns its batch's files;
- its sync is over: the process that ran it ended (it ran on this machine: see below), or the sync is older than
  the newest sync of that folder that has a mark, or older than ``grace``; never while its process is known to run.

Every embedded sync records the process that runs it (``claim_sync``: ``_state/airbyte/<source>/syncs/<id>.json``,
host name, boot id, pid namespace, pid and the process's start) before it publishes a part. So when the next sync
runs on the same machine (the same host, boot and pid namespace: the same container), a killed sync's parts are
removed at once, not only after a newer batch of their folder has a mark or the grace passed; from another machine
the liveness of a process cannot be told, and those two rules alone decide. Records of processes that ended (or
older than the grace, seen from another machine) are removed with the orphans.

Every embedded sync removes its source's orphans before it starts (``remove_orphans``);
``python -m flows.bronze --janitor [--dry-run] [--source NAME]`` removes (or lists) them on demand, with the staging
and connector folders dead processes left on the machine (``runs.janitor``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from lakehouse_ingest.errors import DocumentError
from lakehouse_ingest.lake.documents import SyncOwner, read_document, write_document
from lakehouse_ingest.lake.keys import (
    damaged_manifest_sync_id,
    data_file_epoch,
    manifest_sync_id,
    source_prefix,
    sync_owner_key,
    sync_owners_prefix,
)
from lakehouse_ingest.lake.storage import LakeStorage, StoredObject
from lakehouse_ingest.processes import process_exists

DEFAULT_GRACE = timedelta(hours=24)
_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]


class Liveness(Enum):
    """What this machine can tell of the process that ran a sync."""

    RUNNING = "running"
    ENDED = "ended"
    UNKNOWN = "unknown"  # another machine, or no record


def claim_sync(storage: LakeStorage, source: str, sync_id: int, started_at: datetime) -> None:
    """Record that this process runs ``sync_id`` of ``source`` (before any of its parts is published)."""
    host, boot_id, namespace = _machine()
    document = SyncOwner(
        sync_id=sync_id,
        started_at=started_at,
        host=host,
        pid=os.getpid(),
        boot_id=boot_id,
        pid_namespace=namespace,
        process_started=_process_started(os.getpid()),
    )
    write_document(storage, sync_owner_key(source, sync_id), document)


def release_sync(storage: LakeStorage, source: str, sync_id: int, logger: Logger = _log) -> None:
    """Remove the record of a sync that left nothing behind (it failed and removed its parts); never raises (the
    next sync's janitor removes a record left over)."""
    try:
        storage.delete(sync_owner_key(source, sync_id))
    except Exception as exc:
        logger.error("%s: the record of sync %s could not be removed: %s", source, sync_id, exc)


def liveness(owner: SyncOwner | None) -> Liveness:
    """Whether the process a record names still runs, as far as this machine can tell."""
    if owner is None:
        return Liveness.UNKNOWN
    host, boot_id, namespace = _machine()
    if (owner.host, owner.pid_namespace) != (host, namespace):
        return Liveness.UNKNOWN  # another machine or container: its processes are not ours to see
    if owner.boot_id is not None and boot_id is not None and owner.boot_id != boot_id:
        return Liveness.ENDED  # this machine restarted since
    if owner.process_started is not None:
        running = _process_started(owner.pid) == owner.process_started  # gone, or its pid is another process's now
    else:
        running = process_exists(owner.pid)
    return Liveness.RUNNING if running else Liveness.ENDED


def _machine() -> tuple[str, str | None, str | None]:
    """This machine as processes on it see it: host name, boot id and pid namespace (the last two on Linux)."""
    try:
        boot_id: str | None = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = None
    try:
        namespace: str | None = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        namespace = None
    return socket.gethostname(), boot_id, namespace


def _process_started(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux), or None (no such process, or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _owners(storage: LakeStorage, source: str) -> dict[int, SyncOwner]:
    """The recorded owner of each recent sync of ``source`` (a damaged record counts as none)."""
    found = {}
    for obj in storage.list(sync_owners_prefix(source)):
        try:
            owner = read_document(storage, obj.key, SyncOwner)
        except DocumentError:
            continue
        if owner is not None:
            found[owner.sync_id] = owner
    return found


@dataclass(frozen=True)
class Orphan:
    """A part no batch owns, and why it counts as one."""

    object: StoredObject
    sync_id: int
    why: str


def find_orphans(storage: LakeStorage, source: str, now: datetime, grace: timedelta = DEFAULT_GRACE) -> list[Orphan]:
    """The orphaned parts of one embedded source (see the module docstring)."""
    prefix = source_prefix(source)
    folders: dict[str, list[StoredObject]] = defaultdict(list)
    owned: dict[str, set[int]] = defaultdict(set)
    for obj in storage.list(prefix):
        folder, _, rest = obj.key[len(prefix) + 1 :].partition("/")
        if "/" not in rest and data_file_epoch(rest) is not None:
            folders[folder].append(obj)
        elif rest.startswith(("_manifests/", "_quarantine/")) and (sync_id := _marked_sync(rest)) is not None:
            owned[folder].add(sync_id)
    cutoff = int((now - grace).timestamp() * 1000)
    owners = _owners(storage, source)
    found = []
    for folder, objects in folders.items():
        newest_owned = max(owned[folder], default=None)
        for obj in objects:
            epoch = data_file_epoch(obj.key)
            assert epoch is not None
            near = {epoch - 1, epoch, epoch + 1}  # an embedded sync's id is its start in ms
            if near & owned[folder]:
                continue
            owner = next((owners[i] for i in sorted(near) if i in owners), None)
            alive = liveness(owner)
            if alive is Liveness.RUNNING:
                continue
            if alive is Liveness.ENDED and owner is not None:
                why = f"sync {epoch} has no manifest or quarantine mark and its process ({owner.pid}) has ended"
            elif newest_owned is not None and epoch < newest_owned:
                why = f"sync {epoch} has no manifest or quarantine mark; sync {newest_owned} after it has"
            elif epoch < cutoff:
                why = f"sync {epoch} has no manifest or quarantine mark and is older than {grace}"
            else:
                continue
            found.append(Orphan(obj, epoch, why))
    return sorted(found, key=lambda o: o.object.key)


def _marked_sync(key: str) -> int | None:
    """The sync a manifest, a quarantine mark or a set-aside damaged manifest is for."""
    if key.startswith("_quarantine/") and (sync_id := damaged_manifest_sync_id(key)) is not None:
        return sync_id
    return manifest_sync_id(key)


class Kind(StrEnum):
    """What the janitor removes (``Leftover.kind``)."""

    PART = "orphaned part"
    SYNC_RECORD = "sync record"
    STAGING = "staging folder"
    CONNECTOR_FILES = "connector config folder"


@dataclass(frozen=True)
class Leftover:
    """One thing the janitor removed (or, in a dry run, would remove): where it is and why it may go; ``error`` when
    removing it failed (it stays, and the next janitor tries again)."""

    kind: Kind
    location: str  # a lake URL, or a local path
    why: str
    key: str | None = None  # the key under the bronze root, for lake objects
    error: str | None = None

    def line(self, dry_run: bool) -> str:
        """``would remove <kind> <location> (<why>)`` / ``removed ...``: one line, as the janitor logs and prints it."""
        return f"{'would remove' if dry_run else 'removed'} {self.kind} {self.location} ({self.why})"


def clean_source(
    storage: LakeStorage, source: str, now: datetime, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False
) -> list[Leftover]:
    """Remove (or, with ``dry_run``, only find) one embedded source's orphaned parts, then the records of sync
    processes that ended (or, seen from another machine, are older than ``grace``). A removal that fails is
    returned with its ``error`` and does not stop the others; the record of a sync whose part could not be removed
    is kept (it still tells that sync's process ended). A listing that fails raises (``StorageError``)."""
    found: list[Leftover] = []
    kept: set[int] = set()
    for orphan in find_orphans(storage, source, now, grace):
        item = Leftover(Kind.PART, storage.url_for(orphan.object.key), orphan.why, orphan.object.key)
        item = _removed(storage, item, dry_run)
        kept |= {orphan.sync_id} if item.error else set()
        found.append(item)
    cutoff = int((now - grace).timestamp() * 1000)
    for sync_id, owner in sorted(_owners(storage, source).items()):
        alive = liveness(owner)
        if alive is Liveness.ENDED:
            why = f"sync {sync_id}: its process ({owner.pid}) has ended"
        elif alive is Liveness.UNKNOWN and sync_id < cutoff:
            why = f"sync {sync_id}: run on {owner.host}, older than {grace}"
        else:
            continue
        if not {sync_id - 1, sync_id, sync_id + 1} & kept:
            key = sync_owner_key(source, sync_id)
            found.append(_removed(storage, Leftover(Kind.SYNC_RECORD, storage.url_for(key), why, key), dry_run))
    return found


def _removed(storage: LakeStorage, item: Leftover, dry_run: bool) -> Leftover:
    if dry_run or item.key is None:
        return item
    try:
        storage.delete(item.key)
    except Exception as exc:
        return replace(item, error=f"{type(exc).__name__}: {exc}")
    return item


def remove_orphans(
    storage: LakeStorage, source: str, now: datetime, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False
) -> list[Leftover]:
    """``clean_source``, each item logged (what the next embedded sync of a source does before it starts)."""
    found = clean_source(storage, source, now, grace, dry_run)
    for item in found:
        if item.error:
            _log.error("%s: could not remove %s %s: %s", source, item.kind, item.location, item.error)
        elif item.kind is Kind.PART:
            _log.warning("%s: %s", source, item.line(dry_run))
    return found
