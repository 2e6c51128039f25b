"""When a source last synced successfully, and whether a run now is too soon (``min_interval``).

The record lives in the lake beside the source's state (``_state/airbyte/<source>/last_success.json``), not
in Prefect, so the rule holds for every way a sync starts: a deployment, its schedule, an event, the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.lake.documents import LastSuccess, read_document, write_document
from lakehouse_ingest.lake.keys import last_success_key
from lakehouse_ingest.lake.storage import LakeStorage


def load_last_success(storage: LakeStorage, source: str) -> LastSuccess | None:
    """The source's last successful sync, or None when it never had one."""
    return read_document(storage, last_success_key(source), LastSuccess)


def record_success(storage: LakeStorage, source: str, finished_at: datetime, sync_id: int | None) -> None:
    """Remember a fully successful sync (atomic overwrite)."""
    write_document(
        storage, last_success_key(source), LastSuccess(finished_at=finished_at.astimezone(UTC), sync_id=sync_id)
    )


def too_soon(source: SourceEntry, last: LastSuccess | None, now: datetime) -> str | None:
    """Why ``source`` must not sync at ``now`` (one log line), or None when it may."""
    seconds = source.min_interval_seconds
    if seconds is None or last is None:
        return None
    age = now - last.finished_at
    if age >= timedelta(seconds=seconds):
        return None
    return (
        f"skipped: last successful sync finished {_ago(age)} ago (sync {last.sync_id}), "
        f"min_interval is {source.min_interval}; next run allowed after "
        f"{(last.finished_at + timedelta(seconds=seconds)).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )


def _ago(age: timedelta) -> str:
    seconds = max(int(age.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def too_soon_reasons(storage: LakeStorage, sources: Sequence[SourceEntry], now: datetime) -> dict[str, str]:
    """Why each source with a ``min_interval`` must not sync at ``now``, by source name (only those)."""
    reasons = {s.name: too_soon(s, load_last_success(storage, s.name), now) for s in sources if s.min_interval}
    return {name: why for name, why in reasons.items() if why}
