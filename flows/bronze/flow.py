"""Bronze flows: sync each catalog source into bronze, validate every stream batch, hand off to silver.

Per source: plan → sync → validate each stream → publish manifest + ``bronze.batch.validated`` event for
each passing stream. Embedded sources (``connector``) are planned by installing the connector, validating
the config against its spec, check and discover; they sync locally and their connector state is committed
for the streams handed off. Airbyte sources (``connection_id`` / ``connection_name``) are resolved on the
server, triggered and awaited there, and their batches are the files the job wrote (``platform``). All sources
are planned before any sync starts, so bad input never leaves a partial write; then syncs run concurrently
and one failing source does not stop the others. A source with ``min_interval`` whose last fully successful
sync is more recent than that is skipped with one log line (``force=True`` overrides).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.bronze.handoff import announce_to_silver, record_success, validate_and_hand_off
from flows.bronze.platform import PlatformRun, finish_platform_source
from flows.runs import bronze_run_name, revalidate_run_name, tag_this_run
from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.quarantine import load_quarantined
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.errors import ConfigError, IngestError
from lakehouse_ingest.lake.keys import parse_batch_id
from lakehouse_ingest.lake.roots import opened_storage
from lakehouse_ingest.runs.inputs import resolve_settings, select_sources
from lakehouse_ingest.runs.links import console_url
from lakehouse_ingest.runs.naming import run_tags
from lakehouse_ingest.runs.parameters import BronzeParameters, Names, RevalidateParameters, Text, checked
from lakehouse_ingest.runs.schedule import too_soon_reasons
from lakehouse_ingest.runs.status import WHOLE_SOURCE, StreamReport, StreamStatus, source_report
from lakehouse_ingest.runs.summary import failed, failure_message, headline, links_markdown, locate
from lakehouse_ingest.settings import IngestSettings
from lakehouse_ingest.sources.embedded.plan import EmbeddedPlan
from lakehouse_ingest.sources.embedded.sync import SyncOutcome
from tasks.airbyte import PlatformPlan, cancel_running_jobs, close_clients, resolve_connection_task
from tasks.bronze import (
    commit_state_task,
    embedded_sync_task,
    plan_source_task,
)

ARTIFACT_KEY = "bronze-ingest-summary"
LINKS_ARTIFACT_KEY = "bronze-ingest-tables"


class BronzeRunFailed(IngestError):
    """At least one source failed to sync or one stream failed validation."""


def _cancel_airbyte_jobs(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow cancelled or crashed: cancel on Airbyte every job this run is still awaiting."""
    cancel_running_jobs(f"flow run {flow_run.name} ended {state.type.value}")


# Sources sync concurrently; each sync mostly waits on a connector process or on Airbyte.
# Parameters are checked by the flow itself (``runs.parameters``): a bad one fails the run with one line.
# (Prefect's own annotations reject a concrete runner here: hence the ignore.)
@flow(
    name="bronze-ingest",
    flow_run_name=bronze_run_name,
    validate_parameters=False,
    task_runner=ThreadPoolTaskRunner(max_workers=128),  # type: ignore[arg-type]
    on_cancellation=[_cancel_airbyte_jobs],
    on_crashed=[_cancel_airbyte_jobs],
)
def bronze_ingest(
    sources: Names = None,
    catalog: Text = None,
    bronze: Text = None,
    silver: Text = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Sync each selected source into bronze, validate every stream batch and hand the ones that pass to silver.

    The run fails, naming every failed check of every stream, when a source could not sync or a batch failed
    validation; the other batches are handed off all the same.

    Args:
        sources: Names of the catalog's sources to sync. Left empty: every source of the catalog.
        catalog: Path of the YAML catalog on the worker (not on your machine). Left empty: the worker's CATALOG
            variable, else the built-in catalog (the faker demo source).
        bronze: Where bronze lands: a directory on the worker, or s3://bucket/prefix. Left empty: the worker's
            BRONZE_URI, else ./lakehouse/bronze under the worker's working directory.
        silver: Where the silver Delta tables are: a directory on the worker, or s3://bucket/prefix. Left empty:
            the worker's SILVER_URI, else ./lakehouse/silver. Bronze only passes it on to silver.
        force: Sync even when a source's min_interval since its last successful sync has not passed. Off by
            default: such a source is skipped, and the run says until when.
    """
    logger = get_run_logger()
    given = checked(BronzeParameters, sources=sources, catalog=catalog, bronze=bronze, silver=silver, force=force)
    settings = resolve_settings(given.catalog, given.bronze, given.silver)
    selected = select_sources(settings, given.sources)
    tag_this_run(run_tags(s.name for s in selected))
    logger.info(
        "bronze: %s, silver: %s, sources: %s",
        settings.bronze_uri,
        settings.silver_uri,
        ", ".join(s.name for s in selected),
    )
    skips: dict[str, str] = {}
    if not given.force:
        with opened_storage(settings.bronze_uri) as storage:
            skips = too_soon_reasons(storage, selected, datetime.now(UTC))
    reports = [source_report(name, StreamStatus.SKIPPED, why) for name, why in skips.items()]
    for report in reports:
        logger.info("%s: %s", report.source, report.detail)
    try:
        reports += _run_sources([s for s in selected if s.name not in skips], settings)
    finally:
        close_clients()
    return _summarize(reports, settings)


def _summarize(reports: list[StreamReport], settings: IngestSettings) -> list[dict[str, Any]]:
    """Tags and artifacts of the run; raise BronzeRunFailed naming every failed check of every stream."""
    streams = [(r.source, r.stream) for r in reports if r.stream != WHOLE_SOURCE]
    tag_this_run(run_tags((r.source for r in reports), streams))
    locate(reports, settings.bronze_uri, settings.silver_uri)
    rows = [r.as_row() for r in reports]
    create_table_artifact(key=ARTIFACT_KEY, table=rows, description=headline(reports))
    if links := links_markdown(reports, console_url()):
        create_markdown_artifact(key=LINKS_ARTIFACT_KEY, markdown=links, description="where each stream landed")
    if failed(reports):
        raise BronzeRunFailed(failure_message(reports))
    get_run_logger().info("%s", headline(reports))
    return rows


def _run_sources(selected: Sequence[SourceEntry], settings: IngestSettings) -> list[StreamReport]:
    """Plan every source, then sync them concurrently and finish each as its sync ends."""
    if not selected:
        return []
    platform = PlatformRun.start(selected, settings)
    plan_futures = [
        plan_source_task.submit(s, str(settings.connector_cache_dir))
        if s.connector is not None
        else resolve_connection_task.submit(s, settings.bronze_uri)
        for s in selected
    ]
    plans, reports = _planned(selected, plan_futures)
    syncs: dict[str, PrefectFuture[Any]] = {
        p.source.name: embedded_sync_task.submit(
            p, settings.bronze_uri, settings.parquet_compression, settings.part_max_rows
        )
        if isinstance(p, EmbeddedPlan)
        else platform.sync(p)
        for p in plans
    }
    for plan in plans:
        sync = syncs[plan.source.name]
        sync.wait()
        if isinstance(plan, PlatformPlan):
            finished = finish_platform_source(plan, sync, platform)
        else:
            finished = _finish_embedded(plan, sync, settings)
        announce_to_silver(plan.source.name, finished, settings)
        reports.extend(finished)
    return reports


def _planned(
    selected: Sequence[SourceEntry], futures: Sequence[PrefectFuture[Any]]
) -> tuple[list[EmbeddedPlan | PlatformPlan], list[StreamReport]]:
    """Plans that succeeded, and a report per source that failed to plan (check, discover, connection).

    Bad input (ConfigError) anywhere stops the whole run here, before a single write.
    """
    for future in futures:
        future.wait()
    errors = [f.state.result(raise_on_failure=False) for f in futures if not f.state.is_completed()]
    if config_error := next((e for e in errors if isinstance(e, ConfigError)), None):
        raise config_error
    plans, failures = [], []
    for source, future in zip(selected, futures, strict=True):
        if future.state.is_completed():
            plans.append(future.result())
        else:
            error = future.state.result(raise_on_failure=False)
            failures.append(source_report(source.name, StreamStatus.PLAN_FAILED, str(error)))
    return plans, failures


def _finish_embedded(plan: EmbeddedPlan, sync: PrefectFuture[Any], settings: IngestSettings) -> list[StreamReport]:
    """Validate and hand off the sync's batches, then commit the connector state of those handed off."""
    if not sync.state.is_completed():
        error = sync.state.result(raise_on_failure=False)
        return [source_report(plan.source.name, StreamStatus.SYNC_FAILED, str(error))]
    outcome: SyncOutcome = sync.result()
    reports = validate_and_hand_off(plan.source, outcome.batches, settings)
    handed_off = [r.stream for r in reports if r.status is StreamStatus.HANDED_OFF]
    if handed_off:
        try:
            commit_state_task(outcome, handed_off, settings.bronze_uri)
        except Exception as exc:  # batches are handed off; the next run re-reads them (silver dedups by key)
            reports.append(source_report(plan.source.name, StreamStatus.STATE_COMMIT_FAILED, str(exc)))
    if all(r.status is StreamStatus.HANDED_OFF for r in reports):
        record_success(plan.source.name, outcome.sync_id, settings)
    return reports


@flow(name="bronze-revalidate", flow_run_name=revalidate_run_name, validate_parameters=False)
def bronze_revalidate(
    batches: Names = None, catalog: Text = None, bronze: Text = None, silver: Text = None
) -> list[dict[str, Any]]:
    """Validate quarantined batches again, with the catalog's current checks, and hand off those that now pass.

    Args:
        batches: The quarantined batches, each as SOURCE/STREAM/SYNC_ID (the failed run's message and the
            quarantine folder name them). Required.
        catalog: Path of the YAML catalog on the worker, with the checks to apply now. Left empty: the worker's
            CATALOG variable, else the built-in catalog.
        bronze: The bronze root holding the batches. Left empty: the worker's BRONZE_URI, else ./lakehouse/bronze.
        silver: The silver root the hand-off names. Left empty: the worker's SILVER_URI, else ./lakehouse/silver.
    """
    given = checked(RevalidateParameters, batches=batches, catalog=catalog, bronze=bronze, silver=silver)
    if not given.batches:
        raise ConfigError("parameter 'batches': name at least one quarantined batch as SOURCE/STREAM/SYNC_ID")
    settings = resolve_settings(given.catalog, given.bronze, given.silver)
    sources = {s.name: s for s in select_sources(settings, None)}
    found: dict[str, dict[str, StreamBatch]] = {}
    with opened_storage(settings.bronze_uri) as storage:
        for item in given.batches:
            key = parse_batch_id(item)
            if key.source not in sources:
                raise ConfigError(f"unknown source {key.source!r} in {item!r}")
            found.setdefault(key.source, {})[key.stream] = load_quarantined(
                storage, key.source, key.stream, key.sync_id
            )
    tag_this_run(run_tags(found, [(source, stream) for source, streams in found.items() for stream in streams]))
    reports: list[StreamReport] = []
    for source, streams in found.items():
        handed = validate_and_hand_off(sources[source], streams, settings)
        announce_to_silver(source, handed, settings)
        reports.extend(handed)
    rows = [r.as_row() for r in reports]
    create_table_artifact(key=ARTIFACT_KEY, table=rows, description=headline(reports))
    if failed(reports):
        raise BronzeRunFailed(failure_message(reports))
    return rows
