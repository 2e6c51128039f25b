"""The job ledger: which Airbyte jobs of a platform source were processed (no job's data left behind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.sources.airbyte.jobs import Attempt, Job, JobStatus, StreamStats
from lakehouse_ingest.sources.platform.job_ledger import (
    JobLedger,
    committed_anything,
    jobs_with_unhanded_files,
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


def test_round_trip_per_connection_and_no_ledger_before_the_first_job(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert load_ledger(storage, "pg", "conn-a") is None
    created = datetime(2026, 12, 1, tzinfo=UTC)
    saved = JobLedger(41, {43, 45}, {46}, "http://airbyte:8000", "conn-a", created)
    save_ledger(storage, "pg", saved)
    assert load_ledger(storage, "pg", "conn-a") == saved
    assert (tmp_path / "_state" / "airbyte" / "pg" / "jobs" / "conn-a.json").is_file()
    assert load_ledger(storage, "pg", "conn-b") is None  # another connection (or server) starts its own record


def test_a_record_from_before_connection_keyed_ledgers_is_adopted(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("_state/airbyte/pg/jobs.json", b'{"watermark": 7, "done": [9]}')
    assert load_ledger(storage, "pg", "conn-a") == JobLedger(7, {9}, connection_id="conn-a")


def test_without_a_record_the_history_is_searched(tmp_path: Path) -> None:
    ledger = ledger_for(LocalStorage(tmp_path), "pg", "conn-a", "http://airbyte:8000")
    assert (ledger.watermark, ledger.fresh) == (-1, True)  # every job above -1: the whole history is listed
    jobs = [job(3), job(4, "failed", committed=5), job(5), job(6, "running")]
    ledger.start(5)  # a run triggered it, then died
    ledger.settle_history(jobs, unhanded={4})
    assert [j.id for j in ledger.pending(jobs)] == [4, 5]  # 3 left nothing in bronze; 6 still runs
    ledger.mark_done(4)
    ledger.mark_done(5)
    ledger.advance(jobs)
    assert (ledger.watermark, ledger.done, ledger.in_flight) == (5, set(), set())


def test_a_started_job_stays_pending_until_handed_off() -> None:
    ledger = JobLedger(watermark=10, connection_id="c")
    ledger.start(11)
    ledger.advance([job(11, "running")])
    assert (ledger.watermark, ledger.in_flight) == (10, {11})


def test_job_ids_going_backwards_are_found() -> None:
    handed_off_at = datetime(2026, 12, 1, tzinfo=UTC)
    ledger = JobLedger(watermark=17, connection_id="c", watermark_created_at=handed_off_at)
    before = Job(12, "c", JobStatus.SUCCEEDED, "succeeded", handed_off_at - timedelta(days=1))
    reused = Job(3, "c", JobStatus.SUCCEEDED, "succeeded", handed_off_at + timedelta(days=2))
    assert ledger.reused_job_ids([before, reused]) == [reused]
    assert JobLedger(watermark=17).reused_job_ids([reused]) == []  # nothing known of the watermark's job


def test_unhanded_files_are_found_in_each_jobs_time_window() -> None:
    day = datetime(2026, 12, 1, tzinfo=UTC)
    jobs = [
        Job(1, "c", JobStatus.SUCCEEDED, "succeeded", day, updated_at=day + timedelta(minutes=10)),
        Job(2, "c", JobStatus.SUCCEEDED, "succeeded", day + timedelta(hours=1)),  # no end known: until job 3
        Job(3, "c", JobStatus.FAILED, "failed", day + timedelta(hours=2), updated_at=day + timedelta(hours=2)),
        Job(4, "c", JobStatus.SUCCEEDED, "succeeded", day + timedelta(hours=3), config_type="reset_connection"),
    ]
    ms = lambda at: int(at.timestamp() * 1000)  # noqa: E731
    epochs = [ms(day + timedelta(minutes=1)), ms(day + timedelta(hours=1, minutes=30)), ms(day + timedelta(hours=3))]
    assert jobs_with_unhanded_files(jobs, epochs, handled=set(), end=day + timedelta(hours=4)) == {1, 2}
    assert jobs_with_unhanded_files(jobs, epochs, handled={1}, end=day + timedelta(hours=4)) == {2}
