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

from .checks import BatchValidation
from .embedded import StreamBatch
from .errors import ValidationFailed
from .layout import manifest_key
from .storage import LakeStorage

MANIFEST_VERSION = 1
EVENT_VALIDATED = "bronze.batch.validated"


def build_manifest(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> dict[str, Any]:
    """The manifest document of a validated batch."""
    if not validation.passed:
        raise ValidationFailed(validation.failure or "batch failed validation")
    return {
        "manifest_version": MANIFEST_VERSION,
        "source": batch.source,
        "stream": batch.stream,
        "namespace": batch.namespace,
        "sync_id": batch.sync_id,
        "generation_id": batch.generation_id,
        "started_at": batch.started_at.isoformat(),
        "validated_at": datetime.now(UTC).isoformat(),
        "bronze_root": storage.uri,
        "prefix": batch.prefix,
        "sync_mode": batch.sync_mode,
        "destination_sync_mode": batch.destination_sync_mode,
        "primary_key": batch.primary_key,
        "cursor_field": batch.cursor_field,
        "rows": batch.records,
        "bytes": batch.bytes,
        "files": [{"key": f.key, "url": storage.url_for(f.key), "rows": f.rows, "bytes": f.bytes} for f in batch.files],
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
