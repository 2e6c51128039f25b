"""The job ledger: which Airbyte jobs of a platform source were processed (no job's data left behind)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.sources.airbyte.jobs import Attempt, Job, JobStatus, StreamStats
from lakehouse_ingest.sources.platform.job_ledger import (
    JobLedger,
    committed_anything,
    ledger_for,
    load_ledger,
    save_ledger,
)


def job(job_id: int, status: str = "succeeded", committed: int | None = None) -> Job:
    attempts = () if committed is None else (Attempt(0, status, (StreamStats("users", records_committed=committed),)),)
    return Job(job_id, "c", JobStatus.parse(status), status, datetime.now(UTC), attempts)


def test_pending_is_the_terminal_jobs_above_the_watermark_not_done_oldest_first() -> None:
    ledger = JobLedger(watermark=10, done={13})
    jobs = [job(14, "running"), job(12, "failed"), job(9), job(13), job(11, "cancelled"), job(15)]
    assert [j.id for j in ledger.pending(jobs)] == [11, 12, 15]


def test_the_watermark_stops_below_the_first_job_not_done_or_still_running() -> None:
    ledger = JobLedger(watermark=10)
    jobs = [job(11), job(12, "running"), job(13)]
    for done in (11, 13):
        ledger.mark_done(done)
    ledger.advance(jobs)
    assert (ledger.watermark, ledger.done) == (11, {13})  # 12 still runs: it must be processed later
    ledger.mark_done(12)
    ledger.advance([job(12), job(13), job(14, "pending")])
    assert (ledger.watermark, ledger.done) == (13, set())


def test_what_counts_as_committed() -> None:
    assert committed_anything(job(1))  # succeeded, even with nothing in it (an empty batch is validated too)
    assert committed_anything(job(2, "failed", committed=5))
    assert not committed_anything(job(3, "failed", committed=0))
    assert not committed_anything(job(4, "cancelled"))
    public = Job(5, "c", JobStatus.FAILED, "failed", datetime.now(UTC), records_committed=7)  # totals only
    assert committed_anything(public)


def test_round_trip_and_no_ledger_before_the_first_job(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert load_ledger(storage, "pg") is None
    save_ledger(storage, "pg", JobLedger(41, {43, 45}))
    assert load_ledger(storage, "pg") == JobLedger(41, {43, 45})
    assert (tmp_path / "_state" / "airbyte" / "pg" / "jobs.json").is_file()


def test_a_new_ledger_starts_just_below_the_first_awaited_job(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert ledger_for(storage, "pg", None) is None  # nothing to anchor to: no catch-up
    assert ledger_for(storage, "pg", 42) == JobLedger(41)  # history before it is not replayed
    save_ledger(storage, "pg", JobLedger(7, {9}))
    assert ledger_for(storage, "pg", 42) == JobLedger(7, {9})
