"""Validating stream batches and handing them off, as both the embedded and the Airbyte-server paths do; then
announcing a source's batches to silver in one event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.runs.status import StreamReport, StreamStatus
from lakehouse_ingest.runs.summary import failed_checks_detail
from lakehouse_ingest.settings import IngestSettings
from tasks.bronze import (
    BatchRejected,
    announce_batches_task,
    hand_off_batch_task,
    record_success_task,
    validate_batch_task,
)


def record_success(source: str, sync_id: int, settings: IngestSettings) -> None:
    """Remember a fully successful sync (what ``min_interval`` measures from); a failure only warns."""
    try:
        record_success_task(source, sync_id, settings.bronze_uri)
    except Exception as exc:  # only min_interval depends on it: report, do not fail the handed-off data
        get_run_logger().warning("%s: last successful sync not recorded: %s", source, exc)


def validate_and_hand_off(
    source: SourceEntry,
    batches: dict[str, StreamBatch],
    settings: IngestSettings,
    aliases: Mapping[str, str] | None = None,
) -> list[StreamReport]:
    """Validate every stream batch concurrently; hand off those that pass; one report per batch.

    A batch that fails a check ends its validate task Failed (the UI shows which); the others are handed off all
    the same. ``aliases``: the catalog may name a stream otherwise than its batch (an Airbyte stream by its
    source name).
    """
    aliases = aliases or {}
    # No per-stream tags on these tasks: Prefect looks up tag concurrency limits for every distinct set of task
    # tags, with a service thread and an HTTP client each (seconds per stream); the flow run carries the tags.
    validations: dict[str, PrefectFuture[BatchValidation]] = {
        name: validate_batch_task.submit(
            batch, settings.bronze_uri, source.checks_for(name, *([aliases[name]] if name in aliases else []))
        )
        for name, batch in batches.items()
    }
    reports = []
    for name, batch in batches.items():
        report = StreamReport(
            batch.source, name, StreamStatus.FAILED_VALIDATION, batch.records, len(batch.files), batch.bytes
        )
        future = validations[name]
        future.wait()
        try:
            if not future.state.is_completed():
                error = future.state.result(raise_on_failure=False)
                if isinstance(error, BatchRejected):
                    _checked(report, error.validation)
                    report.detail = failed_checks_detail(error.validation.checks)
                    reports.append(report)
                    continue
                raise error if isinstance(error, BaseException) else RuntimeError(str(error))
            validation: BatchValidation = future.result()
            _checked(report, validation)
            report.status, report.detail = StreamStatus.HANDOFF_FAILED, "manifest not published"
            report.manifest = hand_off_batch_task(batch, validation, settings.bronze_uri, settings.silver_uri)
            report.detail = report.manifest
            report.status = StreamStatus.HANDED_OFF
        except Exception as exc:  # a storage outage after retries: report it, keep going with other streams
            report.detail = f"{type(exc).__name__}: {exc}"
            if report.status is StreamStatus.FAILED_VALIDATION:
                report.status = StreamStatus.ERROR
        reports.append(report)
    return reports


def _checked(report: StreamReport, validation: BatchValidation) -> None:
    report.checks = f"{sum(c.passed for c in validation.checks)}/{len(validation.checks)}"
    report.reconciliation = validation.reconciliation or ""


def announce_to_silver(source: str, reports: Sequence[StreamReport], settings: IngestSettings) -> None:
    """Send the one event that starts silver for every batch of ``source`` this run handed off (none: no event).
    A failure only warns: the manifests are published, and ``silver-merge`` without manifests finds them."""
    manifests = [r.manifest for r in reports if r.status is StreamStatus.HANDED_OFF and r.manifest]
    if not manifests:
        return
    try:
        announce_batches_task(source, manifests, settings.bronze_uri, settings.silver_uri)
    except Exception as exc:
        get_run_logger().warning("%s: batches not announced to silver (%s); they wait for its next run", source, exc)
