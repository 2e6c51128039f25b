"""What ``python -m flows.bronze --janitor [--dry-run] [--source NAME]`` removes (or only lists).

- for each selected embedded source: its orphaned parts and the records of sync processes that ended
  (``bronze.janitor.clean_source``: the same rules the source's next sync applies before it starts);
- on this machine, whatever the sources: the staging folders of processes that died while staging a part
  (where the bronze root stages: ``$TMPDIR/lake-staging-*`` for S3, ``<root>/.staging`` for a directory) and the
  connector config folders of processes that died while their connector ran (``$TMPDIR/airbyte-lakehouse-<uid>``,
  secrets inside).

Sources on an Airbyte server are left alone: their files belong to Airbyte jobs, which the job ledger hands off.
Nothing here runs while a process it could belong to still runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from lakehouse_ingest.bronze.janitor import Kind, Leftover, clean_source
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.errors import IngestError
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.embedded.connector import connector_leftovers


@dataclass
class Sweep:
    """What one janitor pass found: per source (``None``: this machine's), the sources it left alone, and the
    sources whose listing failed."""

    items: list[tuple[str | None, Leftover]] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return len(self.failed) + sum(1 for _, item in self.items if item.error)


def sweep(bronze: LakeStorage, sources: Sequence[SourceEntry], now: datetime, dry_run: bool) -> Sweep:
    """Clean (or, with ``dry_run``, list) what dead syncs left, for ``sources`` and on this machine."""
    found = Sweep()
    for source in sources:
        if source.connector is None:
            found.left_alone.append(source.name)
            continue
        try:
            found.items += [(source.name, item) for item in clean_source(bronze, source.name, now, dry_run=dry_run)]
        except IngestError as exc:  # the lake could not be listed: the other sources may still be
            found.failed.append((source.name, str(exc)))
    for path in bronze.staging_leftovers():
        why = f"process {path.name.split('~', 1)[0].rsplit('-', 1)[-1]} died while staging a part"
        found.items.append((None, _removed(Leftover(Kind.STAGING, str(path), why), path, dry_run)))
    for path in connector_leftovers():
        why = f"process {path.name.split('-', 1)[0]} died while its connector ran"
        found.items.append((None, _removed(Leftover(Kind.CONNECTOR_FILES, str(path), why), path, dry_run)))
    return found


def _removed(item: Leftover, path: Path, dry_run: bool) -> Leftover:
    if dry_run:
        return item
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass  # gone meanwhile (another janitor or sync)
    except OSError as exc:
        return replace(item, error=f"{type(exc).__name__}: {exc}")
    return item
