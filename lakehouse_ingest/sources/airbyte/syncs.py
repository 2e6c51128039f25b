"""Trigger and await one Airbyte sync, the way production Airbyte behaves: never two triggers, never a job left
behind.

- The trigger is slow (it blocks until the job runs: airbyte-platform ``TemporalClient.startNewManualSync``) and
  not idempotent, and the job exists before the answer does, so a proxy's 502/504 or a dropped connection can
  follow a created job. It gets a long read timeout and is never retried blindly: on any transient failure (read
  timeout, 5xx, a reset connection) or a 409 "A sync is already running", the connection's running job is found
  through the job list and attached to, before any new trigger.
- Attaching is to a job that writes data (a ``sync`` or ``refresh``). A ``reset_connection`` / ``clear`` job also
  keeps the connection busy (one workflow runs every job type: the trigger answers the same 409); that run fails
  with a message naming it, and the next run syncs once it has ended.
- Awaiting polls at a fixed interval under an overall deadline. Only succeeded / failed / cancelled end it;
  ``pending``, ``queued``, ``running``, ``incomplete`` keep it waiting, and so does a status this client does not
  know, with a warning, for at most ``unknown_grace`` seconds in a row.
- Any other way out of awaiting (the deadline, an unknown status past its grace, polls that keep failing after
  their retries, an empty or unreadable answer, Ctrl-C, a Prefect cancellation) cancels the job on Airbyte and
  says so; a failed or cancelled job raises with the last attempt's failure summary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.errors import (
    AirbyteConflictError,
    AirbyteError,
    AirbyteJobFailedError,
    AirbyteJobTimeoutError,
    AirbyteTransientError,
    ConnectionBusyError,
)
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus

Logger = logging.Logger | logging.LoggerAdapter[Any]
ATTACH_WAIT_SECONDS = 60.0
UNKNOWN_STATUS_GRACE_SECONDS = 600.0
PROGRESS_EVERY_SECONDS = 60.0  # a long sync says how far it got, at this steady interval

# Jobs being awaited in this process, so a run cancelled from outside (Prefect's on_cancellation /
# on_crashed hooks, which fire in another thread than the polling one) can cancel them on Airbyte.
_active: dict[int, AirbyteClient] = {}
_active_lock = threading.Lock()


def cancel_active_jobs(logger: Logger, why: str) -> list[int]:
    """Cancel every job this process is still awaiting; returns their ids."""
    with _active_lock:
        jobs = list(_active.items())
        _active.clear()
    for job_id, client in jobs:
        logger.warning("airbyte: cancelling job %s: %s", job_id, why)
        try:
            client.cancel_job(job_id)
        except Exception as exc:  # keep cancelling the others
            logger.error("airbyte: cancelling job %s failed: %s", job_id, exc)
    return [job_id for job_id, _ in jobs]


@dataclass(frozen=True)
class SyncRun:
    """A finished sync: the final job and whether we attached to a job started elsewhere."""

    job: Job
    attached: bool
    polls: int


def trigger_or_attach(
    client: AirbyteClient,
    connection_id: str,
    logger: Logger,
    sleep: Callable[[float], None] = time.sleep,
    attach_wait: float = ATTACH_WAIT_SECONDS,
) -> tuple[Job, bool]:
    """Start a sync, or find the one already running; never start two."""
    try:
        job = client.trigger_sync(connection_id)
        logger.info("airbyte: connection %s: started job %s (%s)", connection_id, job.id, job.raw_status)
        return job, False
    except AirbyteTransientError as exc:  # a timeout, a 5xx, a dropped connection: the job may exist already
        logger.warning(
            "airbyte: connection %s: the sync call failed (%s); looking for the job it may have started",
            connection_id,
            exc.message,
        )
    except AirbyteConflictError as exc:
        if not exc.sync_already_running:
            raise
        logger.info("airbyte: connection %s: a sync is already running; attaching to it", connection_id)
    deadline = time.monotonic() + attach_wait
    while True:
        running = client.running_jobs(connection_id)
        busy = [job for job in running if not job.writes_data]
        if busy:
            job = busy[0]
            raise ConnectionBusyError(
                f"a {job.config_type} job is running on the connection (started outside this run); "
                "it clears data, so no sync is attached to or started until it has ended: run again then",
                connection_id=connection_id,
                job_id=job.id,
                status=job.raw_status,
            )
        if running:
            job = running[0]
            if len(running) > 1:
                logger.warning(
                    "airbyte: connection %s has %d running jobs; following the newest, %s",
                    connection_id,
                    len(running),
                    job.id,
                )
            logger.info("airbyte: connection %s: attached to job %s (%s)", connection_id, job.id, job.raw_status)
            return job, True
        if time.monotonic() >= deadline:
            raise AirbyteJobTimeoutError(
                "the sync call failed and no running job appeared; not triggering again",
                connection_id=connection_id,
            )
        sleep(min(2.0, attach_wait))


def await_job(
    client: AirbyteClient,
    job: Job,
    logger: Logger,
    poll_interval: float,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    unknown_grace: float = UNKNOWN_STATUS_GRACE_SECONDS,
) -> tuple[Job, int]:
    """Poll until the job is terminal; cancel it on any other way out (see the module docstring)."""
    started = time.monotonic()
    deadline = started + timeout
    next_progress = started + PROGRESS_EVERY_SECONDS
    polls = 0
    last_status = job.raw_status
    unknown_since: float | None = None
    with _active_lock:
        _active[job.id] = client
    try:
        while not job.terminal:
            now = time.monotonic()
            if now >= deadline:
                raise AirbyteJobTimeoutError(
                    f"the job did not finish within {timeout:.0f} s",
                    connection_id=job.connection_id,
                    job_id=job.id,
                    status=job.raw_status,
                )
            if unknown_since is not None and now - unknown_since >= unknown_grace:
                raise AirbyteJobTimeoutError(
                    f"the job showed status {job.raw_status!r}, which this client does not know, for "
                    f"{unknown_grace:.0f} s (AIRBYTE_UNKNOWN_STATUS_GRACE)",
                    connection_id=job.connection_id,
                    job_id=job.id,
                    status=job.raw_status,
                )
            sleep(min(poll_interval, max(deadline - time.monotonic(), 0.0)))
            job = client.get_job(job.id)
            polls += 1
            if job.raw_status != last_status:
                logger.info("airbyte: job %s: %s -> %s", job.id, last_status, job.raw_status)
                last_status = job.raw_status
            if not job.terminal and (now := time.monotonic()) >= next_progress:
                _progress(logger, job, now - started)
                next_progress = now + PROGRESS_EVERY_SECONDS
            if job.status is not JobStatus.UNKNOWN:
                unknown_since = None
            elif unknown_since is None:
                unknown_since = time.monotonic()
                logger.warning(
                    "airbyte: job %s has status %r this client does not know; still waiting (at most %.0f s)",
                    job.id,
                    job.raw_status,
                    unknown_grace,
                )
    except BaseException as exit_early:  # the deadline, a grace, failing polls, an interruption: no job left behind
        why = _why(exit_early)
        if _cancel(client, job, logger, why) and isinstance(exit_early, AirbyteError):
            exit_early.message += f"; job {job.id} was cancelled on Airbyte"
        raise
    finally:
        with _active_lock:
            _active.pop(job.id, None)
    return job, polls


def _progress(logger: Logger, job: Job, elapsed: float) -> None:
    """One line for a job still running: how long, and the records it emitted so far when the server says."""
    emitted = sum(s.records_emitted for s in job.stream_stats.values())
    counts = f"{emitted} records emitted so far ({emitted / max(elapsed, 1e-9):.0f} records/s)" if emitted else ""
    logger.info(
        "airbyte: job %s still %s after %d min %02d s%s",
        job.id,
        job.raw_status,
        elapsed // 60,
        elapsed % 60,
        f"; {counts}" if counts else "",
    )


def run_connection_sync(
    client: AirbyteClient,
    connection_id: str,
    logger: Logger,
    poll_interval: float = 10.0,
    timeout: float = 6 * 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    unknown_grace: float = UNKNOWN_STATUS_GRACE_SECONDS,
    on_started: Callable[[Job], None] | None = None,
) -> SyncRun:
    """Trigger (or attach), await, and raise AirbyteJobFailedError unless the job succeeded.

    ``on_started`` is called with the job once it is known, before awaiting it (to record it: a run that dies while
    awaiting must not lose the job); an error there cancels the job, as any other way out of awaiting does.
    """
    job, attached = trigger_or_attach(client, connection_id, logger, sleep)
    if on_started is not None:
        try:
            on_started(job)
        except BaseException as exc:
            _cancel(client, job, logger, f"the job could not be recorded before awaiting it ({_why(exc)})")
            raise
    job, polls = await_job(client, job, logger, poll_interval, timeout, sleep, unknown_grace)
    if job.status is not JobStatus.SUCCEEDED:
        summary = "; ".join(str(f) for f in job.failures) or "no failure summary"
        raise AirbyteJobFailedError(
            f"the sync job ended {job.raw_status}: {summary}",
            connection_id=connection_id,
            job_id=job.id,
            status=job.raw_status,
        )
    logger.info("airbyte: job %s succeeded after %d attempt(s)", job.id, max(len(job.attempts), 1))
    return SyncRun(job, attached, polls)


def _why(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit):
        return f"the run was interrupted ({type(error).__name__})"
    if isinstance(error, AirbyteError):
        return error.message
    return f"{type(error).__name__}: {error}"


def _cancel(client: AirbyteClient, job: Job, logger: Logger, why: str) -> bool:
    """Best effort: a failed cancel is logged, never hides the original problem; True when Airbyte took it."""
    logger.warning("airbyte: cancelling job %s: %s", job.id, why)
    try:
        client.cancel_job(job.id)
    except Exception as exc:  # the original timeout/interruption matters more than the cancel's failure
        logger.error("airbyte: cancelling job %s failed: %s", job.id, exc)
        return False
    return True
