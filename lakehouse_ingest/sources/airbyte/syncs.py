"""Trigger and await one Airbyte sync, the way production Airbyte behaves.

- The trigger is slow (it blocks until the job runs) and not idempotent: it gets a long read timeout and is
  never retried blindly. On a read timeout or a 409 "A sync is already running", the connection's running
  job is found through the job list and attached to (a job created by our lost request shows up there).
- Awaiting polls at a fixed interval under an overall deadline. Only succeeded / failed / cancelled end
  it; every other status (``queued``, ``incomplete``, unknown ones) keeps it waiting, unknown ones with a
  warning. On the deadline, and on any interruption (Ctrl-C, Prefect cancellation), the job is cancelled.
- A failed or cancelled job raises with the last attempt's failure summary.
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
    AirbyteJobFailedError,
    AirbyteJobTimeoutError,
    AirbyteTimeoutError,
)
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus

Logger = logging.Logger | logging.LoggerAdapter[Any]
ATTACH_WAIT_SECONDS = 60.0

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
    except AirbyteTimeoutError:
        logger.warning("airbyte: connection %s: the sync call timed out; looking for the job it started", connection_id)
    except AirbyteConflictError as exc:
        if not exc.sync_already_running:
            raise
        logger.info("airbyte: connection %s: a sync is already running; attaching to it", connection_id)
    deadline = time.monotonic() + attach_wait
    while True:
        running = client.running_jobs(connection_id)
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
                "the sync call got no answer and no running job appeared; not triggering again",
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
) -> tuple[Job, int]:
    """Poll until the job is terminal; cancel it on the deadline or on interruption."""
    deadline = time.monotonic() + timeout
    polls = 0
    last_status = job.raw_status
    warned_unknown = False
    with _active_lock:
        _active[job.id] = client
    try:
        while not job.terminal:
            if time.monotonic() >= deadline:
                _cancel(client, job, logger, "the deadline passed")
                raise AirbyteJobTimeoutError(
                    f"the job did not finish within {timeout:.0f} s and was cancelled",
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
            if job.status is JobStatus.UNKNOWN and not warned_unknown:
                logger.warning(
                    "airbyte: job %s has status %r this client does not know; still waiting", job.id, job.raw_status
                )
                warned_unknown = True
    except (KeyboardInterrupt, SystemExit, GeneratorExit) as interruption:
        _cancel(client, job, logger, f"the run was interrupted ({type(interruption).__name__})")
        raise
    finally:
        with _active_lock:
            _active.pop(job.id, None)
    return job, polls


def run_connection_sync(
    client: AirbyteClient,
    connection_id: str,
    logger: Logger,
    poll_interval: float = 10.0,
    timeout: float = 6 * 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncRun:
    """Trigger (or attach), await, and raise AirbyteJobFailedError unless the job succeeded."""
    job, attached = trigger_or_attach(client, connection_id, logger, sleep)
    job, polls = await_job(client, job, logger, poll_interval, timeout, sleep)
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


def _cancel(client: AirbyteClient, job: Job, logger: Logger, why: str) -> None:
    """Best effort: a failed cancel is logged, never hides the original problem."""
    logger.warning("airbyte: cancelling job %s: %s", job.id, why)
    try:
        client.cancel_job(job.id)
    except Exception as exc:  # the original timeout/interruption matters more than the cancel's failure
        logger.error("airbyte: cancelling job %s failed: %s", job.id, exc)
