"""Prefect tasks of the bronze layer: plan and run embedded syncs, validate a batch, hand it off, announce a
source's batches to silver, commit connector state, record a successful sync."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation, validate_batch
from lakehouse_ingest.bronze.manifest import event_for, previous_manifest, publish_manifest
from lakehouse_ingest.bronze.quarantine import failure_event, publish_report, quarantine, release_quarantine
from lakehouse_ingest.catalog.sources import SourceEntry, StreamChecks
from lakehouse_ingest.errors import ValidationFailed
from lakehouse_ingest.lake.roots import opened_storage
from lakehouse_ingest.runs.links import console_url, location_markdown
from lakehouse_ingest.runs.naming import artifact_key
from lakehouse_ingest.runs.schedule import record_success
from lakehouse_ingest.runs.silver_runs import batches_event
from lakehouse_ingest.runs.summary import check_rows, failed_check_line, failed_checks_detail
from lakehouse_ingest.sources.embedded.connector import ConnectorInstaller
from lakehouse_ingest.sources.embedded.plan import EmbeddedPlan, plan_source
from lakehouse_ingest.sources.embedded.state import load_state, save_state
from lakehouse_ingest.sources.embedded.sync import SyncOutcome, run_embedded_sync
from tasks.retrying import transient_retrying_task


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


class BatchRejected(ValidationFailed):
    """A batch failed validation: its validate task ends Failed with this, which carries every check."""

    def __init__(self, validation: BatchValidation, quarantine: str) -> None:
        self.validation, self.quarantine = validation, quarantine
        detail = failed_checks_detail(validation.checks)
        super().__init__(f"{validation.source}.{validation.stream}: {detail} (quarantined: {quarantine})")

    def __reduce__(self) -> tuple[type[BatchRejected], tuple[BatchValidation, str]]:
        return BatchRejected, (self.validation, self.quarantine)


@transient_retrying_task("validate-batch", "validate-{batch.source}-{batch.stream}")
def validate_batch_task(batch: StreamBatch, bronze_uri: str, checks: StreamChecks) -> BatchValidation:
    """Check the Parquet that landed for one stream; keep a report. A batch that fails is quarantined, announced
    (``bronze.batch.failed``), gets an artifact listing every check, and this task ends Failed (``BatchRejected``)."""
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
        return validation
    failures = [c for c in validation.checks if not c.passed]
    for check in failures:
        logger.error("%s.%s: %s", batch.source, batch.stream, failed_check_line(check))
    logger.error("%s.%s: quarantined: %s", batch.source, batch.stream, quarantine_url)
    emit_event(**failure_event(batch, validation, report_url, quarantine_url))
    console = console_url()
    create_table_artifact(
        key=artifact_key("bronze-checks", batch.source, batch.stream),
        table=check_rows(validation.checks),
        description=(
            f"**{batch.source}.{batch.stream}** sync {batch.sync_id}: {len(failures)} of {len(validation.checks)} "
            f"check(s) failed. Quarantined: {location_markdown(quarantine_url, console)}; "
            f"report: {location_markdown(report_url, console)}"
        ),
    )
    raise BatchRejected(validation, quarantine_url)


@transient_retrying_task("hand-off-batch", "handoff-{batch.source}-{batch.stream}")
def hand_off_batch_task(batch: StreamBatch, validation: BatchValidation, bronze_uri: str, silver_uri: str) -> str:
    """Publish the batch's manifest, then announce it with a ``bronze.batch.validated`` event."""
    with opened_storage(bronze_uri) as bronze:
        manifest_url, manifest = publish_manifest(bronze, batch, validation)
    emit_event(**event_for(manifest, manifest_url, silver_uri))
    get_run_logger().info("%s.%s: handed off %s", batch.source, batch.stream, manifest_url)
    return manifest_url


@task(name="announce-batches", task_run_name="announce-{source}", cache_policy=NO_CACHE)
def announce_batches_task(source: str, manifests: list[str], bronze_uri: str, silver_uri: str) -> None:
    """Announce every batch of ``source`` this run handed off, in one ``bronze.batches.validated`` event: what
    starts the one silver run that merges them all (``lakehouse_ingest.runs.silver_runs``)."""
    emit_event(**batches_event(source, manifests, bronze_uri, silver_uri))
    get_run_logger().info("%s: %d batch(es) announced to silver", source, len(manifests))


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
