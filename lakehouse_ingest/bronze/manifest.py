"""The handoff contract to silver: one manifest per validated stream batch, published last.

The manifest is written (atomically) only after every data file of the batch is published and every
check passed, so its existence means "this batch is complete and proven". Silver reads manifests, never
raw listings. Layout: ``airbyte/<source>/<stream>/_manifests/<sync_id>.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.errors import ConfigError, ValidationFailed
from lakehouse_ingest.lake.keys import manifest_key, stream_prefix
from lakehouse_ingest.lake.storage import LakeStorage

MANIFEST_VERSION = 1
EVENT_VALIDATED = "bronze.batch.validated"


def build_manifest(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> dict[str, Any]:
    """The manifest document of a validated batch."""
    if not validation.passed:
        raise ValidationFailed(validation.failure or "batch failed validation")
    described = batch_to_dict(batch)
    files = described.pop("files")
    described.pop("records")
    return {
        "manifest_version": MANIFEST_VERSION,
        **described,
        "validated_at": datetime.now(UTC).isoformat(),
        "bronze_root": storage.uri,
        "rows": batch.records,
        "bytes": batch.bytes,
        "files": [{**f, "url": storage.url_for(f["key"])} for f in files],
        "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in batch.schema],
        "checks": [asdict(c) for c in validation.checks],
    }


def publish_manifest(
    storage: LakeStorage, batch: StreamBatch, validation: BatchValidation
) -> tuple[str, dict[str, Any]]:
    """Write the manifest of a validated batch; returns its full location and the document."""
    document = build_manifest(storage, batch, validation)
    key = manifest_key(batch.source, batch.stream, batch.sync_id)
    storage.put_bytes(key, json.dumps(document, indent=2).encode())
    return storage.url_for(key), document


def event_for(manifest: dict[str, Any], manifest_url: str) -> dict[str, Any]:
    """The ``bronze.batch.validated`` event (name, resource, payload) announcing a manifest."""
    source, stream = manifest["source"], manifest["stream"]
    return {
        "event": EVENT_VALIDATED,
        "resource": {
            "prefect.resource.id": f"bronze.batch.{source}.{stream}",
            "prefect.resource.name": f"{source}.{stream}",
            "source": source,
            "stream": stream,
        },
        "payload": {
            "manifest": manifest_url,
            "source": source,
            "stream": stream,
            "sync_id": manifest["sync_id"],
            "rows": manifest["rows"],
            "files": len(manifest["files"]),
            "bronze_root": manifest["bronze_root"],
        },
    }


EVENT_FAILED = "bronze.batch.failed"


def previous_manifest(storage: LakeStorage, batch: StreamBatch) -> dict[str, Any] | None:
    """The stream's last handed-off manifest before this sync (for schema drift), or None."""
    earlier = []
    for obj in storage.list(f"{batch.prefix}/_manifests"):
        name = obj.key.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) < batch.sync_id:
            earlier.append((int(name[:-5]), obj.key))
    if not earlier:
        return None
    document: dict[str, Any] = json.loads(storage.get_bytes(max(earlier)[1]))
    return document


def report_for(batch: StreamBatch, validation: BatchValidation) -> dict[str, Any]:
    """The JSON report of one batch's validation (kept for passed and failed batches alike)."""
    return {
        "source": batch.source,
        "stream": batch.stream,
        "sync_id": batch.sync_id,
        "passed": validation.passed,
        "failure": validation.failure,
        "validated_at": datetime.now(UTC).isoformat(),
        "rows": batch.records,
        "files": [asdict(f) for f in batch.files],
        "checks": [asdict(c) for c in validation.checks],
    }


def publish_report(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> str:
    """Write ``_reports/<sync_id>.json`` next to the data; returns its location."""
    key = f"{batch.prefix}/_reports/{batch.sync_id}.json"
    storage.put_bytes(key, json.dumps(report_for(batch, validation), indent=2).encode())
    return storage.url_for(key)


def quarantine(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> str:
    """Mark a failed batch as quarantined: ``_quarantine/<sync_id>.json`` holds its report and everything
    needed to validate it again after a fix. Its files stay where they are and, with no manifest, never
    reach silver."""
    key = f"{batch.prefix}/_quarantine/{batch.sync_id}.json"
    document = {**report_for(batch, validation), "batch": batch_to_dict(batch)}
    storage.put_bytes(key, json.dumps(document, indent=2).encode())
    return storage.url_for(key)


def release_quarantine(storage: LakeStorage, batch: StreamBatch) -> None:
    """Remove the quarantine mark of a batch that now passed."""
    storage.delete(f"{batch.prefix}/_quarantine/{batch.sync_id}.json")


def batch_to_dict(batch: StreamBatch) -> dict[str, Any]:
    """A JSON-able description of a batch (its schema is re-read from the files when needed)."""
    return {
        "source": batch.source,
        "stream": batch.stream,
        "namespace": batch.namespace,
        "sync_id": batch.sync_id,
        "generation_id": batch.generation_id,
        "started_at": batch.started_at.isoformat(),
        "prefix": batch.prefix,
        "sync_mode": batch.sync_mode,
        "destination_sync_mode": batch.destination_sync_mode,
        "primary_key": batch.primary_key,
        "cursor_field": batch.cursor_field,
        "records": batch.records,
        "files": [asdict(f) for f in batch.files],
    }


def load_quarantined(storage: LakeStorage, source: str, stream: str, sync_id: int) -> StreamBatch:
    """The quarantined batch, to validate it again."""
    key = f"{stream_prefix(source, stream)}/_quarantine/{sync_id}.json"
    try:
        raw = json.loads(storage.get_bytes(key))["batch"]
    except FileNotFoundError:
        raise ConfigError(f"no quarantined batch {source}.{stream} sync {sync_id} ({storage.url_for(key)})") from None
    files = [PublishedPart(**f) for f in raw["files"]]
    schema = storage.open_parquet(files[0].key).schema_arrow if files else pa.schema([])
    return StreamBatch(
        source=raw["source"],
        stream=raw["stream"],
        namespace=raw["namespace"],
        sync_id=raw["sync_id"],
        generation_id=raw["generation_id"],
        started_at=datetime.fromisoformat(raw["started_at"]),
        prefix=raw["prefix"],
        sync_mode=raw["sync_mode"],
        destination_sync_mode=raw["destination_sync_mode"],
        primary_key=raw["primary_key"],
        cursor_field=raw["cursor_field"],
        schema=schema,
        records=raw["records"],
        files=files,
    )


def failure_event(
    batch: StreamBatch, validation: BatchValidation, report_url: str, quarantine_url: str
) -> dict[str, Any]:
    """The ``bronze.batch.failed`` event: which batch, which check, where the report is."""
    return {
        "event": EVENT_FAILED,
        "resource": {
            "prefect.resource.id": f"bronze.batch.{batch.source}.{batch.stream}",
            "prefect.resource.name": f"{batch.source}.{batch.stream}",
            "source": batch.source,
            "stream": batch.stream,
        },
        "payload": {
            "source": batch.source,
            "stream": batch.stream,
            "sync_id": batch.sync_id,
            "failure": validation.failure,
            "report": report_url,
            "quarantine": quarantine_url,
        },
    }
