"""Bronze flow: sync each catalog source into bronze, validate every stream batch, hand off to silver.

    python -m flows.bronze [--source NAME ...] [--catalog FILE] [--bronze URI] [--silver URI] [--force] [--dry-run]

Exit codes: 0 success, 1 a sync or a validation failed, 2 bad input (nothing written).

Per source: plan → sync → validate each stream → publish manifest + ``bronze.batch.validated`` event for
each passing stream. Embedded sources (``connector``) are planned by installing the connector, validating
the config against its spec, check and discover; they sync locally and their connector state is committed
for the streams handed off. Airbyte sources (``connection_id`` / ``connection_name``) are resolved on the
server, triggered and awaited there, and their batches are the files the job wrote. All sources are planned
before any sync starts, so bad input never leaves a partial write; then syncs run concurrently and one
failing source does not stop the others. A source with ``min_interval`` whose last fully successful sync is
more recent than that is skipped with one log line (``--force`` / ``force=True`` overrides).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import add_lake_arguments, resolve_settings, select_sources
from flows.silver import run_silver
from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.bronze.quarantine import load_quarantined
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.errors import ConfigError, IngestError, ValidationFailed
from lakehouse_ingest.lake.keys import stream_prefix
from lakehouse_ingest.lake.names import safe_stream_dir
from lakehouse_ingest.lake.storage import finalize_s3, opened_storage
from lakehouse_ingest.runs.schedule import load_last_success, too_soon
from lakehouse_ingest.settings import IngestSettings
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings
from lakehouse_ingest.sources.airbyte.syncs import SyncRun
from lakehouse_ingest.sources.embedded.connector import Connector, ConnectorInstaller
from lakehouse_ingest.sources.embedded.plan import EmbeddedPlan, validate_config
from lakehouse_ingest.sources.embedded.sync import SyncOutcome
from lakehouse_ingest.sources.platform.job_ledger import committed_anything
from tasks.airbyte import (
    PlatformOptions,
    PlatformPlan,
    archive_job_logs_task,
    cancel_running_jobs,
    close_clients,
    collect_job_batches_task,
    pending_jobs_task,
    platform_sync_task,
    resolve_connection_task,
    save_ledger_task,
    with_global_limit,
)
from tasks.bronze import (
    commit_state_task,
    embedded_sync_task,
    hand_off_batch_task,
    plan_source_task,
    record_success_task,
    validate_batch_task,
)

ARTIFACT_KEY = "bronze-ingest-summary"
LINKS_ARTIFACT_KEY = "bronze-ingest-tables"
# A superseded or partial full-refresh snapshot is not handed off on purpose (a newer complete one replaces it).
DONE_STATUSES = {"handed_off", "skipped", "superseded", "partial_snapshot"}


class BronzeRunFailed(IngestError):
    """At least one source failed to sync or one stream failed validation."""


@dataclass
class StreamReport:
    """One row of the run summary (and of the table artifact)."""

    source: str
    stream: str
    status: str
    rows: int = 0
    files: int = 0
    bytes: int = 0
    checks: str = ""
    detail: str = ""
    bronze: str = ""
    silver: str = ""

    def as_row(self) -> dict[str, Any]:
        """The artifact/table row."""
        return dict(self.__dict__)


def _cancel_airbyte_jobs(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow cancelled or crashed: cancel on Airbyte every job this run is still awaiting."""
    cancel_running_jobs(f"flow run {flow_run.name} ended {state.type.value}")


# Sources sync concurrently; each sync mostly waits on a connector process or on Airbyte.
# (Prefect's own annotations reject a concrete runner here: hence the ignore.)
@flow(
    name="bronze-ingest",
    task_runner=ThreadPoolTaskRunner(max_workers=128),  # type: ignore[arg-type]
    on_cancellation=[_cancel_airbyte_jobs],
    on_crashed=[_cancel_airbyte_jobs],
)
def bronze_ingest(
    sources: list[str] | None = None,
    catalog: str | None = None,
    bronze: str | None = None,
    silver: str | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Sync, validate and hand off every selected source; fails when any source or stream failed.

    ``force`` syncs sources even when their ``min_interval`` since the last successful sync has not passed.
    """
    logger = get_run_logger()
    settings = resolve_settings(catalog, bronze, silver)
    selected = select_sources(settings, sources)
    logger.info(
        "bronze: %s, silver: %s, sources: %s",
        settings.bronze_uri,
        settings.silver_uri,
        ", ".join(s.name for s in selected),
    )
    reports = [] if force else _skipped_too_soon(selected, settings)
    skipped = {r.source for r in reports}
    for report in reports:
        logger.info("%s: %s", report.source, report.detail)
    try:
        reports += _run_sources([s for s in selected if s.name not in skipped], settings)
    finally:
        close_clients()
    _link_tables(reports, settings)
    rows = [r.as_row() for r in reports]
    create_table_artifact(key=ARTIFACT_KEY, table=rows, description=_headline(reports))
    if links := _links_markdown(reports):
        create_markdown_artifact(key=LINKS_ARTIFACT_KEY, markdown=links, description="where each stream landed")
    failed = [r for r in reports if r.status not in DONE_STATUSES]
    if failed:
        raise BronzeRunFailed("; ".join(f"{r.source}.{r.stream}: {r.detail}" for r in failed))
    logger.info("%s", _headline(reports))
    return rows


def _skipped_too_soon(selected: Sequence[SourceEntry], settings: IngestSettings) -> list[StreamReport]:
    """A ``skipped`` report per source whose ``min_interval`` since its last successful sync has not passed."""
    timed = [s for s in selected if s.min_interval]
    if not timed:
        return []
    now = datetime.now(UTC)
    with opened_storage(settings.bronze_uri) as bronze:
        reasons = {s.name: too_soon(s, load_last_success(bronze, s.name), now) for s in timed}
    return [StreamReport(name, "*", "skipped", detail=why) for name, why in reasons.items() if why]


def _link_tables(reports: Sequence[StreamReport], settings: IngestSettings) -> None:
    """Fill each stream's bronze prefix and silver table location (the artifact's links)."""
    for report in reports:
        if report.stream != "*":
            report.bronze = f"{settings.bronze_uri.rstrip('/')}/{stream_prefix(report.source, report.stream)}/"
            report.silver = f"{settings.silver_uri.rstrip('/')}/{report.source}/{safe_stream_dir(report.stream)}"


def _links_markdown(reports: Sequence[StreamReport]) -> str:
    """A markdown table linking every stream to its bronze prefix and silver table."""
    lines = [
        f"| `{r.source}.{r.stream}` | {r.status} | [{r.bronze}]({r.bronze}) | [{r.silver}]({r.silver}) |"
        for r in reports
        if r.bronze
    ]
    if not lines:
        return ""
    head = ["# Bronze → silver", "", "| stream | status | bronze prefix | silver table |", "|---|---|---|---|"]
    return "\n".join(head + lines) + "\n"


def _run_sources(selected: Sequence[SourceEntry], settings: IngestSettings) -> list[StreamReport]:
    """Plan every source, then sync them concurrently and finish each as its sync ends."""
    if not selected:
        return []
    options = PlatformOptions.from_env()
    if any(s.connector is None for s in selected):
        options = with_global_limit(options)
    plan_futures = [
        plan_source_task.submit(s, str(settings.connector_cache_dir))
        if s.connector is not None
        else resolve_connection_task.submit(s)
        for s in selected
    ]
    plans, reports = _planned(selected, plan_futures)
    syncs: dict[str, PrefectFuture[Any]] = {
        p.source.name: embedded_sync_task.submit(
            p, settings.bronze_uri, settings.parquet_compression, settings.part_max_rows
        )
        if isinstance(p, EmbeddedPlan)
        else platform_sync_task.submit(p, options)
        for p in plans
    }
    for plan in plans:
        reports.extend(_finish_source(plan, syncs[plan.source.name], settings, options))
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
    plans, failed = [], []
    for source, future in zip(selected, futures, strict=True):
        if future.state.is_completed():
            plans.append(future.result())
        else:
            error = future.state.result(raise_on_failure=False)
            failed.append(StreamReport(source.name, "*", "plan_failed", detail=str(error)))
    return plans, failed


def _finish_source(
    plan: EmbeddedPlan | PlatformPlan, sync: PrefectFuture[Any], settings: IngestSettings, options: PlatformOptions
) -> list[StreamReport]:
    """Collect the sync's batches, validate and hand them off, then commit embedded state."""
    sync.wait()
    if isinstance(plan, PlatformPlan):
        return _finish_platform(plan, sync, settings, options)
    if not sync.state.is_completed():
        error = sync.state.result(raise_on_failure=False)
        return [StreamReport(plan.source.name, "*", "sync_failed", detail=str(error))]
    outcome: SyncOutcome = sync.result()
    reports, handed_off = _validate_and_hand_off(plan.source, outcome.batches, settings)
    if handed_off:
        try:
            commit_state_task(outcome, handed_off, settings.bronze_uri)
        except Exception as exc:  # batches are handed off; the next run re-reads them (silver dedups by key)
            reports.append(StreamReport(plan.source.name, "*", "state_commit_failed", detail=str(exc)))
    if all(r.status == "handed_off" for r in reports):
        _record_success(plan.source.name, outcome.sync_id, settings)
    return reports


def _finish_platform(
    plan: PlatformPlan, sync: PrefectFuture[Any], settings: IngestSettings, options: PlatformOptions
) -> list[StreamReport]:
    """Hand off every job of the connection not processed yet (see ``job_ledger``), the awaited one included.

    A failed sync still hands off what it committed; jobs a crashed run or the Airbyte UI left behind are
    processed first, oldest first.
    """
    source = plan.source.name
    run: SyncRun | None = sync.result() if sync.state.is_completed() else None
    error = None if run is not None else sync.state.result(raise_on_failure=False)
    awaited = run.job.id if run is not None else getattr(error, "job_id", None)
    reports = [] if run is not None else [StreamReport(source, "*", "sync_failed", detail=str(error))]
    try:
        ledger, jobs = pending_jobs_task(plan, awaited, run.job if run is not None else None, settings.bronze_uri)
    except Exception as exc:  # the job list is out of reach: hand off the awaited job alone, catch up next run
        get_run_logger().warning("%s: earlier jobs not checked (%s); handing off job %s only", source, exc, awaited)
        ledger, jobs = None, [run.job] if run is not None else []
    pending = ledger.pending(jobs) if ledger is not None else jobs
    # Airbyte deletes an older generation's files once a newer full refresh succeeds: only the newest is a snapshot.
    newest = max((job.id for job in pending if job.status is JobStatus.SUCCEEDED), default=None)
    ours: list[StreamReport] = []
    for job in pending:
        job_reports, done = _hand_off_job(plan, job, job.id == awaited, newest, settings, options)
        reports += job_reports
        ours += job_reports if job.id == awaited else []
        if done and ledger is not None:
            ledger.mark_done(job.id)
    if ledger is not None:
        try:
            save_ledger_task(source, ledger, jobs, settings.bronze_uri)
        except Exception as exc:  # the next run processes these jobs again: silver applies each batch once
            get_run_logger().warning("%s: processed jobs not recorded: %s", source, exc)
    if run is not None and ours and all(r.status in DONE_STATUSES for r in ours):
        _record_success(source, run.job.id, settings)
    return reports


def _hand_off_job(
    plan: PlatformPlan,
    job: Job,
    awaited: bool,
    newest_succeeded: int | None,
    settings: IngestSettings,
    options: PlatformOptions,
) -> tuple[list[StreamReport], bool]:
    """Validate and hand off one job's batches; ``done`` unless a transient error means it must be tried again."""
    source = plan.source.name
    if not committed_anything(job):
        return [], True
    if not awaited:
        get_run_logger().warning(
            "%s: job %s (%s) was never handed off: handing off what it committed now", source, job.id, job.raw_status
        )
    if options.logs_uri:
        archive_job_logs_task.submit(plan, job, options.logs_uri).wait()
    try:
        batches = collect_job_batches_task(plan, job, settings.bronze_uri)
    except ValidationFailed as exc:
        return [StreamReport(source, "*", "failed_validation", detail=str(exc))], True
    except Exception as exc:
        return [StreamReport(source, "*", "error", detail=f"job {job.id}: {type(exc).__name__}: {exc}")], False
    reports = []
    for name, batch in list(batches.items()):
        if not batch.destination_sync_mode.startswith("overwrite"):
            continue
        if newest_succeeded is not None and newest_succeeded > job.id:
            status, why = "superseded", f"a newer full refresh (job {newest_succeeded}) replaces this snapshot"
        elif job.status is not JobStatus.SUCCEEDED:
            status, why = "partial_snapshot", f"{job.raw_status}: part of a full refresh is not a snapshot"
        else:
            continue
        del batches[name]
        detail = f"job {job.id} {why}"
        reports.append(StreamReport(source, name, status, batch.records, len(batch.files), detail=detail))
    handed, _ = _validate_and_hand_off(plan.source, batches, settings)
    reports += handed
    return reports, all(r.status not in ("error", "handoff_failed") for r in reports)


def _record_success(source: str, sync_id: int, settings: IngestSettings) -> None:
    try:
        record_success_task(source, sync_id, settings.bronze_uri)
    except Exception as exc:  # only min_interval depends on it: report, do not fail the handed-off data
        get_run_logger().warning("%s: last successful sync not recorded: %s", source, exc)


def _validate_and_hand_off(
    source: SourceEntry, batches: dict[str, StreamBatch], settings: IngestSettings
) -> tuple[list[StreamReport], list[str]]:
    """Validate every stream batch concurrently; hand off those that pass. Returns reports and handed-off names."""
    validations = {
        name: validate_batch_task.submit(batch, settings.bronze_uri, source.checks_for(name))
        for name, batch in batches.items()
    }
    reports, handed_off = [], []
    for name, batch in batches.items():
        report = StreamReport(
            batch.source,
            name,
            "failed_validation",
            rows=batch.records,
            files=len(batch.files),
            bytes=batch.bytes,
        )
        try:
            validation: BatchValidation = validations[name].result()
            report.checks = f"{sum(c.passed for c in validation.checks)}/{len(validation.checks)}"
            if validation.passed:
                report.status, report.detail = "handoff_failed", "manifest not published"
                report.detail = hand_off_batch_task(batch, validation, settings.bronze_uri, settings.silver_uri)
                report.status = "handed_off"
                handed_off.append(name)
            else:
                report.detail = validation.failure or "validation failed"
        except Exception as exc:  # a storage outage after retries: report it, keep going with other streams
            report.detail = f"{type(exc).__name__}: {exc}"
            report.status = "error" if report.status == "failed_validation" else report.status
        reports.append(report)
    return reports, handed_off


@flow(name="bronze-revalidate")
def bronze_revalidate(
    batches: list[str], catalog: str | None = None, bronze: str | None = None, silver: str | None = None
) -> list[dict[str, Any]]:
    """Validate quarantined batches (``SOURCE/STREAM/SYNC_ID``) again, with the catalog's current checks,
    and hand off those that now pass."""
    settings = resolve_settings(catalog, bronze, silver)
    sources = {s.name: s for s in select_sources(settings, None)}
    found: dict[str, dict[str, StreamBatch]] = {}
    with opened_storage(settings.bronze_uri) as storage:
        for item in batches:
            source, stream, sync_id = parse_batch_id(item)
            if source not in sources:
                raise ConfigError(f"unknown source {source!r} in {item!r}")
            found.setdefault(source, {})[stream] = load_quarantined(storage, source, stream, sync_id)
    reports: list[StreamReport] = []
    for source, streams in found.items():
        reports.extend(_validate_and_hand_off(sources[source], streams, settings)[0])
    rows = [r.as_row() for r in reports]
    create_table_artifact(key=ARTIFACT_KEY, table=rows, description=_headline(reports))
    if any(r.status != "handed_off" for r in reports):
        raise BronzeRunFailed("; ".join(f"{r.source}.{r.stream}: {r.detail}" for r in reports if r.detail))
    return rows


def parse_batch_id(item: str) -> tuple[str, str, int]:
    """``SOURCE/STREAM/SYNC_ID`` → its parts."""
    parts = item.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ConfigError(f"--revalidate takes SOURCE/STREAM/SYNC_ID, got {item!r}")
    return parts[0], parts[1], int(parts[2])


def _headline(reports: Sequence[StreamReport]) -> str:
    ok = [r for r in reports if r.status == "handed_off"]
    return (
        f"{len(ok)}/{len(reports)} stream batch(es) validated and handed off; "
        f"{sum(r.rows for r in ok)} rows, {sum(r.files for r in ok)} files, {sum(r.bytes for r in ok)} bytes"
    )


def preflight(settings: IngestSettings, sources: Sequence[str] | None) -> list[SourceEntry]:
    """Everything the CLI can refuse before starting Prefect: catalog, names, URIs, connector configs."""
    selected = select_sources(settings, sources)
    installer = ConnectorInstaller(settings.connector_cache_dir, lambda m: print(m, file=sys.stderr, flush=True))
    for source in selected:
        if source.connector is not None:
            connector = Connector(installer.executable(source.connector), source.name)
            validate_config(source, connector.spec())
    if any(s.connector is None for s in selected):
        AirbyteSettings.from_env()  # AIRBYTE_URL and credentials present and coherent
    return selected


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bronze",
        description="Sync Airbyte sources into the bronze layer, validate the Parquet that landed and "
        "hand validated batches to silver. Exit codes: 0 ok, 1 sync or validation failed, 2 bad input.",
    )
    add_lake_arguments(parser, "source to sync")
    parser.add_argument(
        "--revalidate",
        action="append",
        metavar="SOURCE/STREAM/SYNC_ID",
        help="validate a quarantined batch again (after a fix) and hand it off if it passes",
    )
    parser.add_argument(
        "--no-silver",
        action="store_true",
        help="stop after bronze (silver then runs on its own, e.g. from the bronze.batch.validated event)",
    )
    parser.add_argument("--force", action="store_true", help="sync even when a source's min_interval has not passed")
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would run (sources, streams, targets, skips); write nothing"
    )
    return parser


def describe_run(settings: IngestSettings, selected: Sequence[SourceEntry], force: bool, silver: bool) -> list[str]:
    """What a run would do, one line per fact: for ``--dry-run`` (reads the lake, writes nothing)."""
    lines = [f"dry run: nothing is synced or written. bronze: {settings.bronze_uri}  silver: {settings.silver_uri}"]
    skips = {r.source: r.detail for r in ([] if force else _skipped_too_soon(selected, settings))}
    for source in selected:
        if source.connector is not None:
            engine = f"embedded connector {source.connector.requirement}"
        else:
            engine = f"Airbyte connection {source.connection_id or source.connection_name!r}"
        streams = ", ".join(s.name for s in source.streams) if source.streams else "every stream it discovers"
        lines.append(f"{source.name}: {engine}; streams: {streams}")
        lines.append(f"  bronze: {settings.bronze_uri.rstrip('/')}/airbyte/{source.name}/<stream>/")
        if source.name in skips:
            lines.append(f"  would be {skips[source.name]}")
        elif source.min_interval:
            lines.append(f"  would sync (min_interval {source.min_interval}: {'forced' if force else 'not too soon'})")
    if silver:
        lines.append(
            f"then silver: merge the handed-off batches into {settings.silver_uri.rstrip('/')}/<source>/<stream>"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = resolve_settings(args.catalog, args.bronze, args.silver)
        for item in args.revalidate or []:
            parse_batch_id(item)
        if args.dry_run:
            print(
                "\n".join(describe_run(settings, select_sources(settings, args.source), args.force, not args.no_silver))
            )
            return 0
        preflight(settings, args.source)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.revalidate:
        state = bronze_revalidate(args.revalidate, args.catalog, args.bronze, args.silver, return_state=True)
    else:
        state = bronze_ingest(args.source, args.catalog, args.bronze, args.silver, args.force, return_state=True)
    if state.is_completed():
        _print_rows(state.result())
        code = 0
    else:
        error = state.result(raise_on_failure=False)
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, ConfigError):
            return 2
        code = 1
    if args.no_silver:
        return code
    # The demo shows both layers: whatever was handed off (even by a partly failed run) goes on to silver.
    return max(code, run_silver(args.source, None, args.catalog, args.bronze, args.silver))


def _print_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["status"] == "skipped":
            print(f"{row['source']}: {row['detail']}")
            continue
        print(
            f"{row['source']}.{row['stream']}: {row['rows']} rows in {row['files']} file(s), "
            f"{row['bytes']} bytes, checks {row['checks']} -> {row['detail']}"
        )


if __name__ == "__main__":
    # Re-import so the flow object lives in ``flows.bronze`` (what deployments reference), not __main__.
    from flows.bronze import main as _main

    try:
        exit_code = _main()
    finally:
        finalize_s3()  # before interpreter teardown: avoids pyarrow's S3 abort at exit (arrow#41087)
    sys.exit(exit_code)
