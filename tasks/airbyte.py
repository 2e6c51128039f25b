"""Prefect tasks for sources that run on an Airbyte server: resolve, sync (trigger + await), collect.

One HTTP client per server is shared by every task of the process (one token exchange, one connection
pool), and a per-server semaphore bounds how many syncs run on it at once. Credentials come from the
environment or, for deployments, from Prefect Secret blocks named by ``AIRBYTE_*_BLOCK`` variables; they
are never task or flow parameters (those are shown in the UI).
"""

from __future__ import annotations

import re
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.roots import opened_storage
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.connections import Connection
from lakehouse_ingest.sources.airbyte.errors import AirbyteError, ConnectionInactiveError, mask_url
from lakehouse_ingest.sources.airbyte.jobs import Job
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings, SyncOptions
from lakehouse_ingest.sources.airbyte.syncs import SyncRun, cancel_active_jobs, run_connection_sync
from lakehouse_ingest.sources.platform.job_files import (
    archive_job_logs,
    connection_identities,
    job_batches,
    unhanded_jobs,
)
from lakehouse_ingest.sources.platform.job_ledger import (
    JobLedger,
    ledger_for,
    list_jobs,
    load_ledger,
    save_ledger,
    went_backwards,
    with_details,
)
from tasks.retrying import transient_retrying_task

_clients: dict[AirbyteSettings, AirbyteClient] = {}
_slots: dict[str, threading.BoundedSemaphore] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class PlatformPlan:
    """A catalog source bound to its (active) connection on the Airbyte server."""

    source: SourceEntry
    connection: Connection


@dataclass(frozen=True)
class PlatformOptions:
    """How syncs are awaited (``SyncOptions``, from the environment; see README)."""

    poll_interval: float
    timeout: float
    max_concurrent_syncs: int
    logs_uri: str | None = None
    unknown_status_grace: float = 600.0
    # The Prefect global concurrency limit shared by every run on this Prefect server, when it exists
    # (``python -m deployments register`` creates it): bounds syncs per Airbyte server across runs.
    global_limit: str | None = None

    @classmethod
    def from_env(cls) -> PlatformOptions:
        """From ``AIRBYTE_POLL_INTERVAL``, ``AIRBYTE_SYNC_TIMEOUT``, ``AIRBYTE_MAX_CONCURRENT_SYNCS`` and
        ``AIRBYTE_LOGS_URI``."""
        return cls(**SyncOptions().model_dump())


def airbyte_limit_name(url: str) -> str:
    """The Prefect global concurrency limit bounding concurrent syncs on one Airbyte server (by host)."""
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1] or "default"
    return "airbyte-syncs-" + re.sub(r"[^A-Za-z0-9_.-]", "-", netloc)


def with_global_limit(options: PlatformOptions) -> PlatformOptions:
    """``options`` naming the server's global concurrency limit when the Prefect server has one."""
    name = airbyte_limit_name(airbyte_client().settings.url)  # the shared client: settings read once
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return options
    return replace(options, global_limit=name)


def _global_slot(options: PlatformOptions) -> AbstractContextManager[Any]:
    if options.global_limit is None:
        return nullcontext()
    return concurrency(options.global_limit, occupy=1, timeout_seconds=options.timeout, strict=True)


def airbyte_settings() -> AirbyteSettings:
    """Settings from the environment, with the secrets Prefect Secret blocks hold (``AIRBYTE_*_BLOCK``)."""
    settings = AirbyteSettings.from_env()
    if not settings.secret_blocks:
        return settings
    from prefect.blocks.system import Secret

    secrets: dict[str, str] = {}
    for name, block in settings.secret_blocks.items():
        secrets[name] = Secret.load(block).get()  # type: ignore[union-attr]
    return settings.with_secrets(**secrets)


def airbyte_client() -> AirbyteClient:
    """The process's shared client for the configured server."""
    settings = airbyte_settings()
    with _lock:
        if settings not in _clients:
            _clients[settings] = settings.client()
        return _clients[settings]


def close_clients() -> None:
    """Close every shared client (end of the flow run)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def cancel_running_jobs(why: str) -> list[int]:
    """Cancel, on Airbyte, every job this process is still awaiting (flow cancelled or crashed)."""
    import logging

    return cancel_active_jobs(logging.getLogger("lakehouse_ingest.sources.airbyte"), why)


def _server_slot(url: str, limit: int) -> threading.BoundedSemaphore:
    with _lock:
        if url not in _slots:
            _slots[url] = threading.BoundedSemaphore(limit)
        return _slots[url]


@transient_retrying_task("resolve-connection", "resolve-{source.name}")
def resolve_connection_task(source: SourceEntry, bronze_uri: str) -> PlatformPlan:
    """Find the source's connection (by id or by name); refuse an inactive one, stream names that would escape or
    share a bronze folder, and job ids that went backwards since its ledger was written (all before a trigger)."""
    client = airbyte_client()
    if source.connection_id:
        connection = client.get_connection(source.connection_id)
    else:
        connection = client.find_connection(source.connection_name or source.name)
    if connection.status != "active":
        raise ConnectionInactiveError(f"the connection is {connection.status}, not active", connection_id=connection.id)
    identities = connection_identities(connection)  # names that would escape or collide: refused before a trigger
    with opened_storage(bronze_uri) as bronze:
        ledger = load_ledger(bronze, source.name, connection.id)
    if ledger is not None and (reused := ledger.reused_job_ids(client.recent_jobs(connection.id))):
        raise ConfigError(went_backwards(source.name, connection.id, ledger, reused))
    get_run_logger().info(
        "%s: Airbyte connection %s (%s), %d stream(s): %s",
        source.name,
        connection.name,
        connection.id,
        len(identities),
        ", ".join(f"{i.destination_name} -> {i.folder}/" for i in identities),
    )
    return PlatformPlan(source, connection)


# No task retries: the trigger must never be repeated blindly; transient errors are retried per request.
@task(name="airbyte-sync", task_run_name="airbyte-sync-{plan.source.name}", cache_policy=NO_CACHE)
def platform_sync_task(plan: PlatformPlan, options: PlatformOptions, bronze_uri: str) -> SyncRun:
    """Trigger (or attach to) the connection's sync and await it, within the server's concurrency bound; the job is
    recorded in the connection's ledger before it is awaited (a run that dies meanwhile does not lose it)."""
    client = airbyte_client()
    logger = get_run_logger()
    slot = _server_slot(client.settings.url, options.max_concurrent_syncs)
    if not slot.acquire(blocking=False):
        logger.info(
            "%s: waiting for one of %d sync slots on %s",
            plan.source.name,
            options.max_concurrent_syncs,
            client.settings.url,
        )
        slot.acquire()
    try:
        with _global_slot(options):
            run = run_connection_sync(
                client,
                plan.connection.id,
                logger,
                options.poll_interval,
                options.timeout,
                unknown_grace=options.unknown_status_grace,
                on_started=lambda job: _record_started(plan, job, client.settings.url, bronze_uri),
            )
    finally:
        slot.release()
    stats = ", ".join(f"{k}: {v.records_committed}" for k, v in run.job.stream_stats.items()) or "no per-stream stats"
    logger.info("%s: job %s committed %s", plan.source.name, run.job.id, stats)
    return run


def _record_started(plan: PlatformPlan, job: Job, server: str, bronze_uri: str) -> None:
    with opened_storage(bronze_uri) as bronze:
        ledger = ledger_for(bronze, plan.source.name, plan.connection.id, mask_url(server))
        ledger.start(job.id)
        save_ledger(bronze, plan.source.name, ledger)


@transient_retrying_task("collect-job-batches", "collect-{plan.source.name}")
def collect_job_batches_task(plan: PlatformPlan, job: Job, bronze_uri: str) -> dict[str, StreamBatch]:
    """Find the files the job wrote for each stream, with what Airbyte says each holds (see ``job_files``)."""
    with opened_storage(bronze_uri) as bronze:
        return job_batches(bronze, plan.source.name, plan.connection, job)


@transient_retrying_task("pending-jobs", "pending-jobs-{plan.source.name}")
def pending_jobs_task(plan: PlatformPlan, awaited_job: Job | None, bronze_uri: str) -> tuple[JobLedger, list[Job]]:
    """The connection's job ledger (see ``job_ledger``) and its jobs above the watermark, the pending ones with all
    their stats; for a connection without a ledger, its history searched for jobs that left unhanded files."""
    client = airbyte_client()
    with opened_storage(bronze_uri) as bronze:
        ledger = ledger_for(bronze, plan.source.name, plan.connection.id, mask_url(client.settings.url))
        jobs = list_jobs(client, plan.connection.id, ledger, awaited_job)
        if ledger.fresh:
            identities = connection_identities(plan.connection)
            unhanded = unhanded_jobs(bronze, plan.source.name, identities, jobs, datetime.now(UTC))
            ledger.settle_history(jobs, unhanded | ({awaited_job.id} if awaited_job is not None else set()))
    return ledger, with_details(client, ledger, jobs, awaited_job)


@transient_retrying_task("record-jobs", "record-jobs-{source}")
def save_ledger_task(source: str, ledger: JobLedger, jobs: list[Job], bronze_uri: str) -> None:
    """Move the ledger's watermark over the processed jobs and persist it."""
    ledger.advance(jobs)
    with opened_storage(bronze_uri) as bronze:
        save_ledger(bronze, source, ledger)


@transient_retrying_task("archive-job-logs", "archive-logs-{plan.source.name}")
def archive_job_logs_task(plan: PlatformPlan, job: Job, logs_uri: str) -> list[str]:
    """Copy the job's attempt logs to the logs bucket (``job-<id>/attempt-<n>/``)."""
    try:
        with opened_storage(logs_uri) as logs:
            written = archive_job_logs(airbyte_client(), job, plan.connection, logs)
    except AirbyteError as exc:  # the public API has no logs; the sync itself succeeded
        get_run_logger().warning("%s: job %s logs not archived: %s", plan.source.name, job.id, exc)
        return []
    get_run_logger().info("%s: archived %d attempt log(s) of job %s", plan.source.name, len(written), job.id)
    return written
