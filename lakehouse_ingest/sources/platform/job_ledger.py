"""Which Airbyte jobs of a connection were handed off, so that no job's data is left behind in bronze.

A run does not only hand off the job it triggered. Airbyte keeps what a job committed even when the job
fails later, and the next sync resumes after it; a worker can die while awaiting or half-way through a hand-off;
a sync can start outside Prefect (the Airbyte UI, an Airbyte schedule). Each leaves files in bronze that no run
validated, and for an incremental stream those rows would never reach silver. So every run hands off each
terminal job of the connection not handed off yet, oldest first, then records it here.

The record (``_state/airbyte/<source>/jobs/<connection_id>.json``, one per connection: a source pointed at another
connection or server starts its own) holds a watermark, every job at or below it handed off, the ids above it
handed off out of order, and the jobs a run triggered or attached to (``in_flight``), written *before* awaiting:
a run that dies while awaiting leaves its job for the next run, which hands it off like any other.

Without a record (the connection's first run, or a record lost), the connection's history is searched: every
terminal job that left files in this source's bronze folders that no manifest or quarantine mark covers is handed
off too, however old. Job ids only grow on one Airbyte server; a job at or below the watermark created after the
watermark's job means the ids restarted (a reinstalled or restored server): that is refused before anything is
triggered (``reused_job_ids``), never silently skipped, because batches and silver are keyed by job id; when the
server's history holds no such job yet (restored from a backup older than the watermark), the run's own job is the
first one, and that run reports it instead of handing anything off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lakehouse_ingest.lake.documents import JobLedgerDoc, read_document, write_document
from lakehouse_ingest.lake.keys import job_ledger_key
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus

CLOCK_SKEW = timedelta(minutes=1)


@dataclass
class JobLedger:
    """Every job id at or below ``watermark`` is handed off, and so are those in ``done``; ``in_flight`` were
    triggered or attached by a run and wait for their hand-off. ``fresh``: no record existed."""

    watermark: int
    done: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)
    server: str | None = None
    connection_id: str | None = None
    watermark_created_at: datetime | None = None
    fresh: bool = False

    def pending(self, jobs: Iterable[Job]) -> list[Job]:
        """The terminal jobs not handed off yet, oldest first (running ones wait for a later run)."""
        return sorted(
            (j for j in jobs if j.terminal and j.id > self.watermark and j.id not in self.done), key=lambda j: j.id
        )

    def start(self, job_id: int) -> None:
        """A run triggered (or attached to) this job: it must be handed off even if that run dies."""
        self.in_flight.add(job_id)

    def mark_done(self, job_id: int) -> None:
        self.done.add(job_id)

    def advance(self, jobs: Iterable[Job]) -> None:
        """Move the watermark over the handed-off jobs, up to the first job that is not (or still runs)."""
        for job in sorted((j for j in jobs if j.id > self.watermark), key=lambda j: j.id):
            if job.id not in self.done:
                break
            self.watermark, self.watermark_created_at = job.id, job.created_at
        self.done = {i for i in self.done if i > self.watermark}
        self.in_flight = {i for i in self.in_flight if i > self.watermark and i not in self.done}

    def settle_history(self, jobs: Iterable[Job], unhanded: set[int]) -> None:
        """A fresh record: every terminal job but those that left unhanded files (or a run started) is done."""
        for job in jobs:
            if job.terminal and job.id not in unhanded and job.id not in self.in_flight:
                self.done.add(job.id)

    def reused_job_ids(self, jobs: Iterable[Job]) -> list[Job]:
        """Jobs whose id is at or below the watermark but that were created after the watermark's job: the server's
        job ids restarted."""
        if self.watermark_created_at is None:
            return []
        newer = self.watermark_created_at + CLOCK_SKEW
        return sorted((j for j in jobs if j.id <= self.watermark and j.created_at > newer), key=lambda j: j.id)


def went_backwards(source: str, connection_id: str, ledger: JobLedger, reused: list[Job]) -> str:
    """What to tell the user when ``reused_job_ids`` found jobs: the first one, the watermark, what to do."""
    return (
        f"source {source!r}: the job ids of connection {connection_id} went backwards (job {reused[0].id} "
        f"was created {reused[0].created_at:%Y-%m-%d %H:%M} UTC, after job {ledger.watermark} was handed off): "
        "the Airbyte server was reinstalled or restored; bronze and silver key batches by job id, so point this "
        "source at a new connection or a new bronze prefix (its jobs ledger: "
        f"{job_ledger_key(source, connection_id)})"
    )


def committed_anything(job: Job) -> bool:
    """Whether the job left data to hand off: a sync (or refresh) that succeeded, or failed after committing."""
    if job.status is JobStatus.SUCCEEDED:
        return job.writes_data
    per_stream = sum(s.records_committed for s in job.stream_stats.values())
    total = job.committed_total
    return job.writes_data and (per_stream > 0 or (total is not None and total[0] > 0))


def ledger_for(storage: LakeStorage, source: str, connection_id: str, server: str) -> JobLedger:
    """The connection's record, or a fresh one (watermark -1: its history is searched) when there is none."""
    ledger = load_ledger(storage, source, connection_id)
    if ledger is None:
        return JobLedger(watermark=-1, server=server, connection_id=connection_id, fresh=True)
    ledger.server = ledger.server or server
    return ledger


def list_jobs(client: AirbyteClient, connection_id: str, ledger: JobLedger, known: Job | None = None) -> list[Job]:
    """The connection's jobs above the watermark (its whole history for a fresh record), oldest first.

    ``known``: a finished job already read with all its stats (the one the run awaited): used as is, and included
    even when the job list lags behind it.
    """
    listed = [job for job in client.jobs_after(connection_id, ledger.watermark) if known is None or job.id != known.id]
    return sorted([*listed, known], key=lambda job: job.id) if known is not None else listed


def with_details(client: AirbyteClient, ledger: JobLedger, jobs: list[Job], known: Job | None = None) -> list[Job]:
    """``jobs`` with each pending one as ``get_job`` describes it (a list answer may lack per-stream stats)."""
    pending = {job.id for job in ledger.pending(jobs)} - ({known.id} if known is not None else set())
    return [client.get_job(job.id) if job.id in pending else job for job in jobs]


def jobs_with_unhanded_files(
    jobs: Iterable[Job], file_epochs_ms: Iterable[int], handled: set[int], end: datetime
) -> set[int]:
    """The terminal writing jobs that left data files in bronze (an epoch inside the job's time window) which no
    manifest or quarantine mark covers (``handled``: the job ids that have one in every stream folder with files).

    ``end``: when the listing was taken (the window of a job without an end time closes there).
    """
    epochs = sorted(file_epochs_ms)
    found = set()
    ordered = sorted(jobs, key=lambda j: j.id)
    for position, job in enumerate(ordered):
        if not job.terminal or not job.writes_data or job.id in handled:
            continue
        following = ordered[position + 1].created_at if position + 1 < len(ordered) else end
        start_ms = int((job.created_at - CLOCK_SKEW).timestamp() * 1000)
        stop_ms = int(((job.updated_at or following) + CLOCK_SKEW).timestamp() * 1000)
        if any(start_ms <= epoch <= stop_ms for epoch in epochs):
            found.add(job.id)
    return found


def load_ledger(storage: LakeStorage, source: str, connection_id: str) -> JobLedger | None:
    """The connection's record; the source's record from before connection-keyed records when that is all there is
    (it belonged to the source's one connection). None before its first hand-off."""
    document = read_document(storage, job_ledger_key(source, connection_id), JobLedgerDoc)
    if document is None:
        document = read_document(storage, job_ledger_key(source), JobLedgerDoc)
        if document is not None and document.connection_id not in (None, connection_id):
            document = None
    if document is None:
        return None
    return JobLedger(
        watermark=document.watermark,
        done=set(document.done),
        in_flight=set(document.in_flight or ()),
        server=document.server,
        connection_id=document.connection_id or connection_id,
        watermark_created_at=document.watermark_created_at,
    )


def save_ledger(storage: LakeStorage, source: str, ledger: JobLedger) -> None:
    """Persist the ledger atomically, under its connection."""
    if ledger.connection_id is None:
        raise ValueError("a job ledger is kept per connection")
    document = JobLedgerDoc(
        watermark=ledger.watermark,
        done=sorted(ledger.done),
        server=ledger.server,
        connection_id=ledger.connection_id,
        watermark_created_at=ledger.watermark_created_at,
        in_flight=sorted(ledger.in_flight) or None,
    )
    write_document(storage, job_ledger_key(source, ledger.connection_id), document)
