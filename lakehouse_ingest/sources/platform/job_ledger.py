"""Which Airbyte jobs of a platform source were processed, so that no job's data is left behind in bronze.

A run does not only hand off the job it triggered. Airbyte keeps what a job committed even when the job
fails later, and the next sync resumes after it; a worker can die after Airbyte finished; a sync can start
outside Prefect (the Airbyte UI, an Airbyte schedule). Each leaves files in bronze that no run validated, and
for an incremental stream those rows would never reach silver. So every run processes each terminal job of
the connection it has not processed yet, oldest first, then records it here.

The record (``_state/airbyte/<source>/jobs.json``) is a watermark, every job at or below it processed, and
the ids above it processed out of order. It starts just below the first job a run triggers or attaches to:
history from before this project ran is not replayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lakehouse_ingest.lake.documents import JobLedgerDoc, read_document, write_document
from lakehouse_ingest.lake.keys import job_ledger_key
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus


@dataclass
class JobLedger:
    """Every job id at or below ``watermark`` is processed, and so are those in ``done``."""

    watermark: int
    done: set[int] = field(default_factory=set)

    def pending(self, jobs: Iterable[Job]) -> list[Job]:
        """The terminal jobs not processed yet, oldest first (running ones wait for a later run)."""
        return sorted(
            (j for j in jobs if j.terminal and j.id > self.watermark and j.id not in self.done), key=lambda j: j.id
        )

    def mark_done(self, job_id: int) -> None:
        self.done.add(job_id)

    def advance(self, jobs: Iterable[Job]) -> None:
        """Move the watermark over the processed jobs, up to the first job that is not (or still runs)."""
        for job in sorted((j for j in jobs if j.id > self.watermark), key=lambda j: j.id):
            if job.id not in self.done:
                break
            self.watermark = job.id
        self.done = {i for i in self.done if i > self.watermark}


def committed_anything(job: Job) -> bool:
    """Whether the job left data to hand off: a sync (or refresh) that succeeded, or failed after committing."""
    if job.status is JobStatus.SUCCEEDED:
        return job.writes_data
    per_stream = sum(s.records_committed for s in job.stream_stats.values())
    total = job.committed_total
    return job.writes_data and (per_stream > 0 or (total is not None and total[0] > 0))


def ledger_for(storage: LakeStorage, source: str, awaited: int | None) -> JobLedger | None:
    """The source's ledger; a new one just below the awaited job when there is none (None without either)."""
    ledger = load_ledger(storage, source)
    if ledger is None and awaited is not None:
        ledger = JobLedger(watermark=awaited - 1)
    return ledger


def jobs_to_check(client: AirbyteClient, connection_id: str, ledger: JobLedger, known: Job | None = None) -> list[Job]:
    """The connection's jobs above the watermark; the pending ones as ``jobs/get`` describes them (all stats).

    ``known``: a finished job already read that way (the one the run awaited): used as is, and included even
    when the job list lags behind it.
    """
    listed = [job for job in client.jobs_after(connection_id, ledger.watermark) if known is None or job.id != known.id]
    pending = {job.id for job in ledger.pending(listed)}
    jobs = [client.get_job(job.id) if job.id in pending else job for job in listed]
    return sorted([*jobs, known], key=lambda job: job.id) if known is not None else jobs


def load_ledger(storage: LakeStorage, source: str) -> JobLedger | None:
    """The source's ledger, or None before its first processed job."""
    document = read_document(storage, job_ledger_key(source), JobLedgerDoc)
    return None if document is None else JobLedger(document.watermark, set(document.done))


def save_ledger(storage: LakeStorage, source: str, ledger: JobLedger) -> None:
    """Persist the ledger atomically."""
    write_document(storage, job_ledger_key(source), JobLedgerDoc(watermark=ledger.watermark, done=sorted(ledger.done)))
