"""Reports of every validated batch, and the quarantine of a failed one.

Every batch gets a report (``_reports/<sync_id>.json``: each check with counts, never data values). A batch
that fails is quarantined: ``_quarantine/<sync_id>.json`` holds its report and everything needed to validate
it again after a fix; its files stay where they are and, without a manifest, never reach silver. The failure
is announced by the ``bronze.batch.failed`` event (described here, emitted by ``tasks/``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.bronze.manifest import batch_resource
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.documents import (
    CheckEntry,
    FileEntry,
    Quarantine,
    QuarantinedBatch,
    Report,
    read_document,
    write_document,
)
from lakehouse_ingest.lake.keys import quarantine_key, report_key
from lakehouse_ingest.lake.storage import LakeStorage

EVENT_FAILED = "bronze.batch.failed"


def report_for(batch: StreamBatch, validation: BatchValidation) -> Report:
    """The report of one batch's validation (kept for passed and failed batches alike)."""
    return Report(
        source=batch.source,
        stream=batch.stream,
        sync_id=batch.sync_id,
        passed=validation.passed,
        failure=validation.failure,
        validated_at=datetime.now(UTC),
        rows=batch.records,
        files=[FileEntry(**asdict(f)) for f in batch.files],
        checks=[CheckEntry(**asdict(c)) for c in validation.checks],
    )


def publish_report(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> str:
    """Write ``_reports/<sync_id>.json`` next to the data; returns its location."""
    return write_document(storage, report_key(batch.source, batch.stream, batch.sync_id), report_for(batch, validation))


def quarantine(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> str:
    """Mark a failed batch as quarantined; returns the mark's location."""
    files = [FileEntry(**asdict(f)) for f in batch.files]
    document = Quarantine(
        **report_for(batch, validation).model_dump(),
        batch=QuarantinedBatch(**batch.description(), records=batch.records, files=files),
    )
    return write_document(storage, quarantine_key(batch.source, batch.stream, batch.sync_id), document)


def release_quarantine(storage: LakeStorage, batch: StreamBatch) -> None:
    """Remove the quarantine mark of a batch that now passed."""
    storage.delete(quarantine_key(batch.source, batch.stream, batch.sync_id))


def load_quarantined(storage: LakeStorage, source: str, stream: str, sync_id: int) -> StreamBatch:
    """The quarantined batch, to validate it again."""
    key = quarantine_key(source, stream, sync_id)
    document = read_document(storage, key, Quarantine)
    if document is None:
        raise ConfigError(f"no quarantined batch {source}.{stream} sync {sync_id} ({storage.url_for(key)})")
    raw = document.batch
    files = [PublishedPart(f.key, f.rows, f.bytes) for f in raw.files]
    schema = storage.open_parquet(files[0].key).schema_arrow if files else pa.schema([])
    description = raw.model_dump(exclude={"records", "files"})
    return StreamBatch(**description, schema=schema, records=raw.records, files=files)


def failure_event(
    batch: StreamBatch, validation: BatchValidation, report_url: str, quarantine_url: str
) -> dict[str, Any]:
    """The ``bronze.batch.failed`` event: which batch, which check, where the report is."""
    return {
        "event": EVENT_FAILED,
        "resource": batch_resource(batch.source, batch.stream),
        "payload": {
            "source": batch.source,
            "stream": batch.stream,
            "sync_id": batch.sync_id,
            "failure": validation.failure,
            "report": report_url,
            "quarantine": quarantine_url,
        },
    }
