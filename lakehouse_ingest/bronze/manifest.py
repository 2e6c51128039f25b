"""The handoff contract to silver: one manifest per validated stream batch, published last.

The manifest is written (atomically) only after every data file of the batch is published and every
check passed, so its existence means "this batch is complete and proven". Silver reads manifests, never
raw listings. Layout: ``airbyte/<source>/<stream>/_manifests/<sync_id>.json`` (``lake.keys``); the document
is ``lake.documents.Manifest``. Its announcement is the Prefect event ``bronze.batch.validated`` (the event
is described here as plain data; ``tasks/`` emits it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.checks.validate import BatchValidation
from lakehouse_ingest.errors import ConfigError, DocumentError, ValidationFailed
from lakehouse_ingest.lake.documents import (
    CheckEntry,
    ColumnEntry,
    Manifest,
    ManifestFile,
    read_document,
    write_document,
)
from lakehouse_ingest.lake.keys import damaged_manifest_key, manifest_key, manifest_sync_id, manifests_prefix
from lakehouse_ingest.lake.storage import LakeStorage

EVENT_VALIDATED = "bronze.batch.validated"
_log = logging.getLogger(__name__)


def build_manifest(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> Manifest:
    """The manifest document of a validated batch."""
    if not validation.passed:
        raise ValidationFailed(validation.failure or "batch failed validation")
    return Manifest(
        **batch.description(),
        validated_at=datetime.now(UTC),
        bronze_root=storage.uri,
        rows=batch.records,
        bytes=batch.bytes,
        files=[ManifestFile(**asdict(f), url=storage.url_for(f.key)) for f in batch.files],
        columns=[ColumnEntry(name=f.name, type=str(f.type), nullable=f.nullable) for f in batch.schema],
        checks=[CheckEntry(**asdict(c)) for c in validation.checks],
        reconciliation=validation.reconciliation,
    )


def publish_manifest(storage: LakeStorage, batch: StreamBatch, validation: BatchValidation) -> tuple[str, Manifest]:
    """Write the manifest of a validated batch; returns its full location and the document.

    A manifest already there for this sync id is replaced only when it lists the same files (a retried hand-off).
    Listing other files means the sync id was used twice (an Airbyte server reinstalled with new connections
    counts its jobs from 1 again): silver keys batches by sync id and would take the new batch for the old one,
    already applied, and drop its rows without a word. That is refused (ConfigError, naming both), never
    overwritten."""
    document = build_manifest(storage, batch, validation)
    key = manifest_key(batch.source, batch.stream, batch.sync_id)
    try:
        existing = read_document(storage, key, Manifest)
    except DocumentError:
        existing = None  # a damaged manifest is replaced: its batch was never readable by silver
    if existing is not None and {f.key for f in existing.files} != {f.key for f in document.files}:
        raise ConfigError(
            f"{batch.source}.{batch.stream}: sync {batch.sync_id} already has a manifest listing other files "
            f"({storage.url_for(key)}, validated {existing.validated_at:%Y-%m-%d %H:%M} UTC): the sync id was used "
            "twice (an Airbyte server reinstalled or restored?); silver keys batches by sync id, so point this "
            "source at a new bronze prefix (or move the old batch away) and run again"
        )
    return write_document(storage, key, document), document


def load_manifest(storage: LakeStorage, source: str, stream: str, sync_id: int) -> Manifest:
    """The manifest of one handed-off batch (FileNotFoundError when there is none)."""
    key = manifest_key(source, stream, sync_id)
    manifest = read_document(storage, key, Manifest)
    if manifest is None:
        raise FileNotFoundError(storage.url_for(key))
    return manifest


def manifest_sync_ids(storage: LakeStorage, source: str, stream: str) -> set[int]:
    """The sync ids of every manifest of one stream."""
    found = (manifest_sync_id(obj.key) for obj in storage.list(manifests_prefix(source, stream)))
    return {sync_id for sync_id in found if sync_id is not None}


def previous_manifest(storage: LakeStorage, batch: StreamBatch) -> Manifest | None:
    """The stream's last handed-off manifest before this sync (for schema drift), or None; a damaged one on the
    way is set aside (``set_aside``) so that it never blocks the stream."""
    earlier = sorted(
        (i for i in manifest_sync_ids(storage, batch.source, batch.stream) if i < batch.sync_id), reverse=True
    )
    for sync_id in earlier:
        try:
            return load_manifest(storage, batch.source, batch.stream, sync_id)
        except DocumentError as exc:
            set_aside(storage, batch.source, batch.stream, sync_id, exc)
    return None


def set_aside(storage: LakeStorage, source: str, stream: str, sync_id: int, error: DocumentError) -> str:
    """Move a manifest that cannot be read out of ``_manifests`` (into ``_quarantine/<sync_id>.damaged-manifest``,
    its bytes kept), so that neither bronze nor silver is blocked by it; logged as an error naming both places.
    Its batch is no longer handed off: ``--revalidate`` or the next catch-up of its job hands it off again."""
    key, aside = manifest_key(source, stream, sync_id), damaged_manifest_key(source, stream, sync_id)
    storage.put_bytes(aside, storage.get_bytes(key))
    storage.delete(key)
    _log.error("%s.%s: %s; set aside as %s", source, stream, error, storage.url_for(aside))
    return storage.url_for(aside)


def event_for(manifest: Manifest, manifest_url: str, silver_root: str) -> dict[str, Any]:
    """The ``bronze.batch.validated`` event (name, resource, payload) announcing a manifest."""
    source, stream = manifest.source, manifest.stream
    return {
        "event": EVENT_VALIDATED,
        "resource": batch_resource(source, stream),
        "payload": {
            "manifest": manifest_url,
            "source": source,
            "stream": stream,
            "sync_id": manifest.sync_id,
            "rows": manifest.rows,
            "files": len(manifest.files),
            "bronze_root": manifest.bronze_root,
            "silver_root": silver_root,
        },
    }


def batch_resource(source: str, stream: str) -> dict[str, str]:
    """The Prefect event resource of a stream's batches (``bronze.batch.<source>.<stream>``)."""
    return {
        "prefect.resource.id": f"bronze.batch.{source}.{stream}",
        "prefect.resource.name": f"{source}.{stream}",
        "source": source,
        "stream": stream,
    }
