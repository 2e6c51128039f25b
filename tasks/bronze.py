"""Thin Prefect wrappers around the core: retries, names, logging and events; no logic of their own.

Storage objects and clients never cross task boundaries (Prefect would try to hash them): tasks take
URIs and build what they need. Every task uses ``NO_CACHE``: all of them have side effects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from deltalake.exceptions import CommitFailedError
from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation, validate_batch
from lakehouse_ingest.bronze.manifest import event_for, previous_manifest, publish_manifest
from lakehouse_ingest.bronze.quarantine import failure_event, publish_report, quarantine, release_quarantine
from lakehouse_ingest.catalog.sources import SourceEntry, StreamChecks
from lakehouse_ingest.errors import ConnectorInstallError, StorageError
from lakehouse_ingest.lake.storage import opened_storage
from lakehouse_ingest.runs.schedule import record_success
from lakehouse_ingest.sources.embedded.connector import ConnectorInstaller
from lakehouse_ingest.sources.embedded.plan import EmbeddedPlan, plan_source
from lakehouse_ingest.sources.embedded.state import load_state, save_state
from lakehouse_ingest.sources.embedded.sync import SyncOutcome, run_embedded_sync

P = ParamSpec("P")
R = TypeVar("R")


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what can heal by itself: storage hiccups, package-index hiccups while installing, and a
    Delta commit that lost a race to another writer (the retry re-reads the table's record, then applies or
    finds the batch already there)."""
    try:
        state.result()
    except (StorageError, ConnectorInstallError, ConnectionError, TimeoutError, CommitFailedError):
        return True
    except Exception:
        return False
    return False


def transient_retrying_task(name: str, task_run_name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A side-effecting task that retries (with backoff) only on transient errors."""

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return task(
            name=name,
            task_run_name=task_run_name,
            retries=2,
            retry_delay_seconds=[5.0, 20.0],
            retry_condition_fn=retry_transient,
            cache_policy=NO_CACHE,
        )(fn)

    return decorate


@transient_retrying_task("plan-source", "plan-{source.name}")
def plan_source_task(source: SourceEntry, connector_cache_dir: str) -> EmbeddedPlan:
    """Install the connector if needed, validate the config against its spec, check and discover."""
    logger = get_run_logger()
    installer = ConnectorInstaller(Path(connector_cache_dir), logger.info)
    plan = plan_source(source, installer)
    logger.info(
        "%s: %d stream(s) planned: %s",
        source.name,
        len(plan.streams),
        ", ".join(f"{s.name} ({s.sync_mode})" for s in plan.streams),
    )
    return plan


# No retries: a retry would be a new sync, and the connector's own failures rarely heal by waiting.
@task(name="embedded-sync", task_run_name="sync-{plan.source.name}", cache_policy=NO_CACHE)
def embedded_sync_task(plan: EmbeddedPlan, bronze_uri: str, compression: str, part_max_rows: int) -> SyncOutcome:
    """Run the connector and stream its records into bronze Parquet."""
    with opened_storage(bronze_uri) as bronze:
        return run_embedded_sync(plan, bronze, get_run_logger(), compression=compression, part_max_rows=part_max_rows)


@transient_retrying_task("validate-batch", "validate-{batch.source}-{batch.stream}")
def validate_batch_task(batch: StreamBatch, bronze_uri: str, checks: StreamChecks) -> BatchValidation:
    """Check the Parquet that landed for one stream; keep a report; quarantine and announce a failure."""
    logger = get_run_logger()
    with opened_storage(bronze_uri) as bronze:
        previous = previous_manifest(bronze, batch)
        previous_schema = [c.model_dump() for c in previous.columns] if previous else None
        validation = validate_batch(bronze, batch, checks, previous_schema)
        report_url = publish_report(bronze, batch, validation)
        if validation.passed:
            release_quarantine(bronze, batch)
        else:
            quarantine_url = quarantine(bronze, batch, validation)
    for check in validation.checks:
        if check.passed and "policy warn" in check.detail:
            logger.warning("%s.%s: %s: %s", batch.source, batch.stream, check.name, check.detail)
    if validation.passed:
        logger.info(
            "%s.%s: %d check(s) passed; report %s", batch.source, batch.stream, len(validation.checks), report_url
        )
    else:
        logger.error("%s (quarantined: %s)", validation.failure, quarantine_url)
        emit_event(**failure_event(batch, validation, report_url, quarantine_url))
    return validation


@transient_retrying_task("hand-off-batch", "handoff-{batch.source}-{batch.stream}")
def hand_off_batch_task(batch: StreamBatch, validation: BatchValidation, bronze_uri: str, silver_uri: str) -> str:
    """Publish the batch's manifest, then announce it with a ``bronze.batch.validated`` event."""
    with opened_storage(bronze_uri) as bronze:
        manifest_url, manifest = publish_manifest(bronze, batch, validation)
    emit_event(**event_for(manifest, manifest_url, silver_uri))
    get_run_logger().info("%s.%s: handed off %s", batch.source, batch.stream, manifest_url)
    return manifest_url


@transient_retrying_task("commit-state", "commit-state-{outcome.source}")
def commit_state_task(outcome: SyncOutcome, handed_off: list[str], bronze_uri: str) -> None:
    """Advance the connector state of the streams that were handed off (others resume where they were)."""
    with opened_storage(bronze_uri) as bronze:
        state = load_state(bronze, outcome.source)
        committed = {outcome.batches[name].state_key for name in handed_off}
        full_refresh = {b.state_key for b in outcome.batches.values() if b.sync_mode == "full_refresh"}
        all_committed = set(handed_off) == set(outcome.batches)
        state.merge(outcome.state_messages, committed, all_committed, full_refresh)
        for stream in handed_off:
            state.generations[stream] = outcome.batches[stream].generation_id
        state.last_sync_id = outcome.sync_id
        save_state(bronze, outcome.source, state)
    get_run_logger().info("%s: state committed for %d stream(s)", outcome.source, len(handed_off))


@transient_retrying_task("record-success", "record-success-{source}")
def record_success_task(source: str, sync_id: int, bronze_uri: str) -> None:
    """Remember that ``source`` synced with every stream handed off (what ``min_interval`` measures from)."""
    with opened_storage(bronze_uri) as bronze:
        record_success(bronze, source, datetime.now(UTC), sync_id)
