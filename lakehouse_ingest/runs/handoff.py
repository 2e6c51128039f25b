"""Which Airbyte jobs a run hands off, and which of their full-refresh snapshots it must withhold.

A run hands off every terminal job of the connection not handed off yet (``sources.platform.job_ledger``),
oldest first, its own included. Two kinds of batch are withheld on purpose, each with its reason:

- a *superseded* snapshot: an overwrite stream's batch of a job older than the newest succeeded job among
  them. Airbyte deletes an older generation's files once a newer full refresh succeeds, and applying the
  older snapshot after the newer one would bring back replaced rows;
- a *partial* snapshot: an overwrite stream's batch of a job that did not succeed. Part of a full refresh is
  not a snapshot: applying it would delete every row it does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.runs.status import StreamReport, StreamStatus
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus


def newest_succeeded(jobs: Iterable[Job]) -> int | None:
    """The id of the newest succeeded job among ``jobs`` (the one whose snapshots are current)."""
    return max((job.id for job in jobs if job.status is JobStatus.SUCCEEDED), default=None)


def withheld_snapshots(
    batches: Mapping[str, StreamBatch], job: Job, newest_succeeded_id: int | None
) -> dict[str, StreamReport]:
    """The overwrite batches of ``job`` not to hand off, by stream, each with its report (see module doc)."""
    withheld = {}
    for name, batch in batches.items():
        if not batch.destination_sync_mode.startswith("overwrite"):
            continue
        if newest_succeeded_id is not None and newest_succeeded_id > job.id:
            status = StreamStatus.SUPERSEDED
            why = f"a newer full refresh (job {newest_succeeded_id}) replaces this snapshot"
        elif job.status is not JobStatus.SUCCEEDED:
            status, why = StreamStatus.PARTIAL_SNAPSHOT, f"{job.raw_status}: part of a full refresh is not a snapshot"
        else:
            continue
        withheld[name] = StreamReport(
            batch.source, name, status, batch.records, len(batch.files), detail=f"job {job.id} {why}"
        )
    return withheld


def job_settled(reports: Sequence[StreamReport]) -> bool:
    """The job needs no other run: none of its streams hit a transient failure after its data was proven."""
    return not any(r.status.retry_later for r in reports)
