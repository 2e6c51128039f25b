"""Validating stream batches and handing them off, as both the embedded and the Airbyte-server paths do."""

from __future__ import annotations

from collections.abc import Mapping

from prefect import get_run_logger

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.runs.status import StreamReport, StreamStatus
from lakehouse_ingest.settings import IngestSettings
from tasks.bronze import hand_off_batch_task, record_success_task, validate_batch_task


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

    ``aliases``: the catalog may name a stream otherwise than its batch (an Airbyte stream by its source name).
    """
    aliases = aliases or {}
    validations = {
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
        try:
            validation: BatchValidation = validations[name].result()
            report.checks = f"{sum(c.passed for c in validation.checks)}/{len(validation.checks)}"
            report.reconciliation = validation.reconciliation or ""
            if validation.passed:
                report.status, report.detail = StreamStatus.HANDOFF_FAILED, "manifest not published"
                report.detail = hand_off_batch_task(batch, validation, settings.bronze_uri, settings.silver_uri)
                report.status = StreamStatus.HANDED_OFF
            else:
                report.detail = validation.failure or "validation failed"
        except Exception as exc:  # a storage outage after retries: report it, keep going with other streams
            report.detail = f"{type(exc).__name__}: {exc}"
            if report.status is StreamStatus.FAILED_VALIDATION:
                report.status = StreamStatus.ERROR
        reports.append(report)
    return reports
