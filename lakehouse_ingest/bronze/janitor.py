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
- it is older than the newest sync of that folder that has one, or older than ``grace`` (a sync still running in
  another process is younger than both).

``python -m flows.bronze --janitor [--dry-run]`` lists (and removes) them; every embedded sync also removes its
source's orphans before it starts.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from lakehouse_ingest.lake.keys import damaged_manifest_sync_id, data_file_epoch, manifest_sync_id, source_prefix
from lakehouse_ingest.lake.storage import LakeStorage, StoredObject

DEFAULT_GRACE = timedelta(hours=24)
_log = logging.getLogger(__name__)


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
    found = []
    for folder, objects in folders.items():
        newest_owned = max(owned[folder], default=None)
        for obj in objects:
            epoch = data_file_epoch(obj.key)
            assert epoch is not None
            if {epoch - 1, epoch, epoch + 1} & owned[folder]:  # an embedded sync's id is its start in ms
                continue
            if newest_owned is not None and epoch < newest_owned:
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


def remove_orphans(
    storage: LakeStorage, source: str, now: datetime, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False
) -> list[Orphan]:
    """Remove (or, with ``dry_run``, only list) one embedded source's orphaned parts; each is logged."""
    orphans = find_orphans(storage, source, now, grace)
    for orphan in orphans:
        if not dry_run:
            storage.delete(orphan.object.key)
        verb = "would remove" if dry_run else "removed"
        _log.warning("%s: %s orphaned part %s (%s)", source, verb, storage.url_for(orphan.object.key), orphan.why)
    return orphans
