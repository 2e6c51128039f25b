"""The Airbyte-server side of a bronze run: sync each connection, then hand off every job not handed off yet.

A run does not only hand off the job it awaited: Airbyte keeps what a failed job committed, a worker can die
after Airbyte finished, a sync can start in the Airbyte UI. So each run hands off, oldest first, every terminal
job of the connection its ledger has not recorded (``lakehouse_ingest.sources.platform.job_ledger``), and
withholds the full-refresh snapshots ``lakehouse_ingest.runs.handoff`` says must not be applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from flows.bronze.handoff import record_success, validate_and_hand_off
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.errors import ValidationFailed
from lakehouse_ingest.runs.handoff import job_settled, newest_succeeded, withheld_snapshots
from lakehouse_ingest.runs.status import StreamReport, StreamStatus, source_report
from lakehouse_ingest.settings import IngestSettings
from lakehouse_ingest.sources.airbyte.jobs import Job
from lakehouse_ingest.sources.airbyte.syncs import SyncRun
from lakehouse_ingest.sources.platform.job_files import connection_identities
from lakehouse_ingest.sources.platform.job_ledger import JobLedger, committed_anything, went_backwards
from tasks.airbyte import (
    PlatformOptions,
    PlatformPlan,
    archive_job_logs_task,
    collect_job_batches_task,
    pending_jobs_task,
    platform_sync_task,
    save_ledger_task,
    with_global_limit,
)


@dataclass(frozen=True)
class PlatformRun:
    """How this run awaits Airbyte syncs (options, the server's global limit) and where its lake is."""

    options: PlatformOptions
    settings: IngestSettings

    @classmethod
    def start(cls, selected: Sequence[SourceEntry], settings: IngestSettings) -> PlatformRun:
        """Options from the environment, bound by the Airbyte server's global limit when there are such sources."""
        options = PlatformOptions.from_env()
        if any(s.connector is None for s in selected):
            options = with_global_limit(options)
        return cls(options, settings)

    def sync(self, plan: PlatformPlan) -> PrefectFuture[SyncRun]:
        """Trigger (or attach to) the connection's sync and await it, in a task of its own."""
        return platform_sync_task.submit(plan, self.options, self.settings.bronze_uri)


def finish_platform_source(plan: PlatformPlan, sync: PrefectFuture[Any], run: PlatformRun) -> list[StreamReport]:
    """Hand off every job of the connection not processed yet, the awaited one included; record them."""
    source = plan.source.name
    synced: SyncRun | None = sync.result() if sync.state.is_completed() else None
    error = None if synced is not None else sync.state.result(raise_on_failure=False)
    awaited = synced.job.id if synced is not None else getattr(error, "job_id", None)
    reports = [] if synced is not None else [source_report(source, StreamStatus.SYNC_FAILED, str(error))]
    bronze_uri = run.settings.bronze_uri
    try:
        ledger: JobLedger | None
        ledger, jobs = pending_jobs_task(plan, synced.job if synced is not None else None, bronze_uri)
    except Exception as exc:  # the job list is out of reach: hand off the awaited job alone, catch up next run
        get_run_logger().warning("%s: earlier jobs not checked (%s); handing off job %s only", source, exc, awaited)
        ledger, jobs = None, [synced.job] if synced is not None else []
    if ledger is not None and (reused := ledger.reused_job_ids(jobs)):
        # The server's job ids restarted (its history held none yet when the run was resolved, so this run's own
        # job is the first): handing it off would collide with the batches of the job that had its id before.
        why = went_backwards(source, plan.connection.id, ledger, reused)
        return [*reports, source_report(source, StreamStatus.PLAN_FAILED, why)]
    pending = ledger.pending(jobs) if ledger is not None else jobs
    newest = newest_succeeded(pending)
    ours: list[StreamReport] = []
    for job in pending:
        job_reports = _hand_off_job(plan, job, job.id == awaited, newest, run)
        reports += job_reports
        ours += job_reports if job.id == awaited else []
        if ledger is not None and job_settled(job_reports):
            ledger.mark_done(job.id)
    if ledger is not None:
        try:
            save_ledger_task(source, ledger, jobs, bronze_uri)
        except Exception as exc:  # the next run processes these jobs again: silver applies each batch once
            get_run_logger().warning("%s: processed jobs not recorded: %s", source, exc)
    if synced is not None and ours and all(r.status.done for r in ours):
        record_success(source, synced.job.id, run.settings)
    return reports


def _hand_off_job(
    plan: PlatformPlan, job: Job, awaited: bool, newest_succeeded_id: int | None, run: PlatformRun
) -> list[StreamReport]:
    """Validate and hand off one job's batches, withholding stale or partial snapshots."""
    source = plan.source.name
    if not committed_anything(job):
        return []
    if not awaited:
        get_run_logger().warning(
            "%s: job %s (%s) was never handed off: handing off what it committed now", source, job.id, job.raw_status
        )
    if run.options.logs_uri:
        archive_job_logs_task.submit(plan, job, run.options.logs_uri).wait()
    try:
        batches = collect_job_batches_task(plan, job, run.settings.bronze_uri)
    except ValidationFailed as exc:
        return [source_report(source, StreamStatus.FAILED_VALIDATION, str(exc))]
    except Exception as exc:
        return [source_report(source, StreamStatus.ERROR, f"job {job.id}: {type(exc).__name__}: {exc}")]
    withheld = withheld_snapshots(batches, job, newest_succeeded_id)
    handed = {name: batch for name, batch in batches.items() if name not in withheld}
    source_names = {i.destination_name: i.name for i in connection_identities(plan.connection)}
    return list(withheld.values()) + validate_and_hand_off(plan.source, handed, run.settings, source_names)
