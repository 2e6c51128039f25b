"""The job state machine of the fake Airbyte, and the ticker that drives it in real time.

A job moves through Airbyte's statuses as wall-clock time passes::

    pending → (queued) → running → (incomplete → running)* → succeeded | failed | cancelled

Time is the only input: every read of a job first calls :meth:`JobMachine.advance_all` with ``time.time()``, which
replays what happened since (attempts start and end at their planned times, not when someone looks). A ticker thread
advances jobs between requests and calls the test's writer (which lands real files) outside the lock, since a
writer may take a while; the attempt ends when the writer returns.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from datetime import UTC, datetime

from support.fake_airbyte.catalog import stream_names
from support.fake_airbyte.state import FakeAttempt, FakeConnection, FakeJob, FakeOptions, FakeState, Outcome

BYTES_PER_RECORD = 128


class JobMachine:
    """Creates jobs, moves them along their statuses and computes their (in-progress) stats."""

    def __init__(self, state: FakeState, options: FakeOptions) -> None:
        self.state = state
        self.options = options

    # -- the ticker --------------------------------------------------------------------------------------------
    def run_ticker(self, stop: threading.Event) -> None:
        """Advance every job each 10 ms until ``stop`` is set, and run the writer for attempts that are due."""
        state = self.state
        while not stop.wait(0.01):
            with state.lock:
                self.advance_all(time.time())
                due = [job for job in state.jobs.values() if job.writer_state == "due"]
                for job in due:
                    job.writer_state = "running"
                work = [(job, state.connections[job.connection_id]) for job in due]
            for job, connection in work:
                self._write(job, connection)

    def _write(self, job: FakeJob, connection: FakeConnection) -> None:
        """Call the writer for the job's last attempt (outside the lock) and end the attempt with what it wrote."""
        result: dict[str, int] | None = None
        error: str | None = None
        try:
            assert self.options.writer is not None
            result = dict(self.options.writer(job, connection))
        except Exception as exc:  # the writer's failure fails the attempt, as a destination's would
            error = f"{type(exc).__name__}: {exc}"
            self.state.errors.append(f"writer failed for job {job.id}: {error}\n{traceback.format_exc()}")
        with self.state.lock:
            job.writer_calls += 1
            job.writer_state = "done"
            if job.terminal:
                return  # cancelled while writing
            attempt = job.attempts[-1]
            now = time.time()
            if error is None and result is not None and commits(attempt.outcome):
                self._end_attempt_failed(job, attempt, now, attempt.outcome, result)
            elif error is None and result is not None:
                self._end_attempt_succeeded(job, attempt, now, result)
            else:
                job.writer_error = error
                failure = {
                    "failed": {
                        "failureOrigin": "destination",
                        "failureType": "system_error",
                        "externalMessage": f"Something went wrong in the destination: {error}",
                    }
                }
                self._end_attempt_failed(job, attempt, now, failure)

    # -- moving jobs along -------------------------------------------------------------------------------------
    def advance_all(self, now: float) -> None:
        """Bring every job not waiting for its writer up to ``now`` (call with the lock held)."""
        for job in self.state.jobs.values():
            if not job.terminal and job.writer_state is None:
                self.advance(job, now)

    def advance(self, job: FakeJob, now: float) -> None:
        """Replay the job's transitions up to ``now``, each at the time it was due."""
        options = self.options
        while not job.terminal and job.writer_state is None:
            if job.status == "pending":
                at = job.created_at + options.pending_seconds
                if now < at:
                    return
                if options.queued_seconds > 0:
                    self._set_status(job, "queued", at)
                else:
                    self.start_attempt(job, at)
            elif job.status == "queued":
                at = job.phase_since + options.queued_seconds
                if now < at:
                    return
                self.start_attempt(job, at)
            elif job.status == "incomplete":
                at = job.phase_since + options.retry_delay_seconds
                if now < at:
                    return
                self.start_attempt(job, at)
            elif job.status == "running":
                attempt = job.attempts[-1]
                if now < attempt.planned_end:
                    return
                if attempt.outcome == "succeeded" or commits(attempt.outcome):
                    if options.writer is not None and job.replicates:
                        job.writer_state = "due"  # the ticker calls the writer outside the lock
                        return
                    written = dict.fromkeys(job.streams, options.records_per_stream) if job.replicates else {}
                    if commits(attempt.outcome):
                        self._end_attempt_failed(job, attempt, attempt.planned_end, attempt.outcome, written)
                    else:
                        self._end_attempt_succeeded(job, attempt, attempt.planned_end, written)
                else:
                    self._end_attempt_failed(job, attempt, attempt.planned_end, attempt.outcome)
            else:  # pragma: no cover - defensive
                return

    def create_job(
        self, connection: FakeConnection, now: float, config_type: str = "sync", *, run_seconds: float | None = None
    ) -> FakeJob:
        """A pending job for the connection, with the attempt outcomes the test planned for it (a sync or refresh;
        a reset always succeeds and only takes the plans meant for it: ``run_seconds``)."""
        state = self.state
        names = {n.name: n for n in stream_names(connection)}
        replicates = config_type in ("sync", "refresh")
        job = FakeJob(
            id=state.next_job_id,
            connection_id=connection.connection_id,
            config_type=config_type,
            streams=list(names),
            created_at=now,
            outcomes=state.plans.pop(connection.connection_id, ["succeeded"]) if replicates else ["succeeded"],
            stuck=connection.connection_id in state.stuck and replicates,
            updated_at=now,
            phase_since=now,
            names=names,
            run_seconds=run_seconds,
        )
        if replicates:
            state.stuck.discard(connection.connection_id)
        for report in state.status_reports:  # report_status() for the connection's next job
            if report.job_id is None and report.connection_id == connection.connection_id:
                report.job_id = job.id
        state.next_job_id += 1
        state.jobs[job.id] = job
        return job

    def start_attempt(self, job: FakeJob, at: float) -> None:
        """The job's next attempt starts running at ``at``, with the outcome planned for its number."""
        number = len(job.attempts)
        outcome = job.outcomes[min(number, len(job.outcomes) - 1)]
        seconds = self.options.job_seconds if job.run_seconds is None else job.run_seconds
        planned_end = math.inf if job.stuck else at + seconds
        attempt = FakeAttempt(number, at, planned_end, outcome, updated_at=at)
        attempt.log_lines = [
            f"{log_time(at)} platform > Starting attempt {number} of job {job.id} (connection {job.connection_id})",
            f"{log_time(at)} source > Reading streams: {', '.join(job.streams)}"
            if job.replicates
            else f"{log_time(at)} platform > Clearing streams: {', '.join(job.streams)}",
        ]
        job.attempts.append(attempt)
        job.started_at = job.started_at or at
        self._set_status(job, "running", at)

    def cancel_job(self, job: FakeJob, at: float) -> None:
        """Cancel the job: a running attempt fails as a manual cancellation with what it had emitted."""
        job.cancelled = True
        self.state.status_reports = [r for r in self.state.status_reports if r.job_id != job.id]
        if job.attempts and job.attempts[-1].status == "running":
            attempt = job.attempts[-1]
            progress = self.progress(job, attempt, at)
            attempt.stream_stats = {
                name: stats(counts["recordsEmitted"], committed=0) for name, counts in progress.items()
            }
            attempt.failure = {
                "failureOrigin": "airbyte_platform",
                "failureType": "manual_cancellation",
                "externalMessage": "This attempt was cancelled",
                "internalMessage": "Setting attempt to FAILED because the job was cancelled",
                "timestamp": int(at * 1000),
            }
            attempt.status = "failed"
            attempt.has_output = False
            attempt.ended_at = attempt.updated_at = at
            attempt.log_lines.append(f"{log_time(at)} platform > Attempt {attempt.id} cancelled")
        self._set_status(job, "cancelled", at)

    def progress(self, job: FakeJob, attempt: FakeAttempt, now: float) -> dict[str, dict[str, int]]:
        """In-progress stats of a running attempt (what the stats table shows to jobs/list)."""
        if attempt.status != "running":
            return attempt.stream_stats
        if not job.replicates:
            return {}  # a reset moves no records: the stats table has nothing for it
        seconds = self.options.job_seconds if job.run_seconds is None else job.run_seconds
        fraction = min(0.95, max(0.0, (now - attempt.created_at) / max(seconds, 1e-6)))
        planned = self.options.records_per_stream
        emitted = int(planned * fraction)
        estimate = {"estimatedRecords": planned, "estimatedBytes": planned * BYTES_PER_RECORD}
        return {name: {**stats(emitted, committed=emitted // 2), **estimate} for name in job.streams}

    # -- transitions -------------------------------------------------------------------------------------------
    @staticmethod
    def _set_status(job: FakeJob, status: str, at: float) -> None:
        job.status = status
        job.phase_since = at
        job.updated_at = max(job.updated_at, at)

    def _end_attempt_succeeded(self, job: FakeJob, attempt: FakeAttempt, at: float, records: dict[str, int]) -> None:
        attempt.stream_stats = {}
        if job.replicates:
            attempt.stream_stats = {name: stats(int(records.get(name, 0))) for name in job.streams}
        for name, count in records.items():  # a writer may report streams the catalog does not list
            attempt.stream_stats.setdefault(name, stats(int(count)))
        attempt.status = "succeeded"
        attempt.ended_at = attempt.updated_at = at
        total = sum(s["recordsCommitted"] for s in attempt.stream_stats.values())
        attempt.log_lines += [
            f"{log_time(at)} destination > Committed {total} records",
            f"{log_time(at)} platform > Attempt {attempt.id} of job {job.id} succeeded",
        ]
        self._set_status(job, "succeeded", at)

    def _end_attempt_failed(
        self, job: FakeJob, attempt: FakeAttempt, at: float, outcome: Outcome, committed: dict[str, int] | None = None
    ) -> None:
        custom = outcome.get("failed", {}) if isinstance(outcome, dict) else {}
        attempt.failure = {
            "failureOrigin": "source",
            "failureType": "system_error",
            "externalMessage": "Something went wrong within the source connector",
            "internalMessage": "io.airbyte.workers.internal.exception.SourceException: "
            "Source process exited with non-zero exit code 1",
            "retryable": True,
            "fromTraceMessage": True,
            **custom,
            "timestamp": int(at * 1000),
        }
        emitted = self.options.records_per_stream // 2
        attempt.stream_stats = {name: stats(emitted, committed=0) for name in job.streams} if job.replicates else {}
        if committed is not None and job.replicates:  # what it wrote before failing is committed
            attempt.stream_stats = {name: stats(int(committed.get(name, 0))) for name in job.streams}
        attempt.status = "failed"
        attempt.ended_at = attempt.updated_at = at
        attempt.log_lines += [
            f"{log_time(at)} platform > Attempt {attempt.id} of job {job.id} failed: "
            f"{attempt.failure.get('externalMessage')}",
        ]
        if attempt.id + 1 < len(job.outcomes):
            self._set_status(job, "incomplete", at)
        else:
            self._set_status(job, "failed", at)


def check_outcomes(outcomes: list[Outcome]) -> None:
    """Refuse a plan of attempt outcomes the machine does not know (ValueError)."""
    if not outcomes:
        raise ValueError("plan at least one attempt")
    for outcome in outcomes:
        ok = outcome in ("succeeded", "failed") or (
            isinstance(outcome, dict)
            and set(outcome) in ({"failed"}, {"failed", "committed"})
            and isinstance(outcome["failed"], dict)
            and outcome.get("committed", True) is True
        )
        if not ok:
            raise ValueError(f"bad attempt outcome {outcome!r}")


def commits(outcome: Outcome) -> bool:
    """A failed attempt that committed its records before failing."""
    return isinstance(outcome, dict) and outcome.get("committed") is True


def stats(emitted: int, committed: int | None = None) -> dict[str, int]:
    """One stream's SyncStats: ``emitted`` records (``committed`` of them committed, default all)."""
    committed = emitted if committed is None else committed
    return {
        "recordsEmitted": emitted,
        "bytesEmitted": emitted * BYTES_PER_RECORD,
        "stateMessagesEmitted": 1 if emitted else 0,
        "recordsCommitted": committed,
        "bytesCommitted": committed * BYTES_PER_RECORD,
        "recordsRejected": 0,
    }


def log_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
