"""Prefect tasks of the silver layer: find pending manifests, merge one batch into its Delta table."""

from __future__ import annotations

import re

from prefect import get_run_logger
from prefect.events import emit_event

from lakehouse_ingest.bronze.manifest import load_manifest
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.keys import manifest_key
from lakehouse_ingest.lake.storage import opened_storage
from lakehouse_ingest.silver.merge import apply_manifest
from lakehouse_ingest.silver.result import SilverResult
from lakehouse_ingest.silver.tables import SilverTables
from tasks.bronze import transient_retrying_task

_MANIFEST = re.compile(
    r"(?P<root>.*?)/?(?P<key>airbyte/(?P<source>[^/]+)/(?P<stream>[^/]+)/_manifests/(?P<id>\d+)\.json)"
)
EVENT_APPLIED = "silver.batch.applied"

Pending = tuple[str, str, int]  # source, stream, sync id


def parse_manifest_location(location: str) -> tuple[str, Pending]:
    """``<bronze root>/airbyte/<source>/<stream>/_manifests/<sync_id>.json`` → (bronze root, batch)."""
    match = _MANIFEST.fullmatch(location)
    if not match:
        raise ConfigError(f"not a bronze manifest location: {location!r}")
    return match["root"] or ".", (match["source"], match["stream"], int(match["id"]))


@transient_retrying_task("find-pending-batches", "find-pending-{source}")
def pending_batches_task(source: str, bronze_uri: str, silver_uri: str) -> list[Pending]:
    """Manifests of ``source`` whose sync id is not yet in its silver table, oldest first."""
    found: set[Pending] = set()
    with opened_storage(bronze_uri) as bronze:
        for obj in bronze.list(f"airbyte/{source}"):
            if match := _MANIFEST.fullmatch(obj.key):
                found.add((match["source"], match["stream"], int(match["id"])))
    with opened_storage(silver_uri) as silver:
        tables = SilverTables(silver)
        applied = {
            stream: tables.applied_sync_ids(source, stream, candidates={i for _, s, i in found if s == stream})
            for stream in {s for _, s, _ in found}
        }
    pending = sorted((b for b in found if b[2] not in applied[b[1]]), key=lambda b: (b[1], b[2]))
    get_run_logger().info("%s: %d batch(es) waiting for silver", source, len(pending))
    return pending


@transient_retrying_task("merge-into-silver", "silver-{batch[0]}-{batch[1]}-{batch[2]}")
def apply_batch_task(batch: Pending, bronze_uri: str, silver_uri: str) -> SilverResult:
    """Merge one validated bronze batch (read from its manifest) into the stream's silver table."""
    source, stream, sync_id = batch
    with opened_storage(bronze_uri) as bronze, opened_storage(silver_uri) as silver:
        manifest = load_manifest(bronze, source, stream, sync_id)
        result = apply_manifest(bronze, SilverTables(silver), manifest)
        manifest_url = bronze.url_for(manifest_key(source, stream, sync_id))
    logger = get_run_logger()
    if result.skipped:
        logger.warning("%s.%s: sync %s not merged: %s", source, stream, sync_id, result.skipped)
        return result
    if not result.applied:
        logger.info("%s.%s: sync %s already in silver", source, stream, sync_id)
        return result
    logger.info(
        "%s.%s: sync %s merged into %s (v%s): +%d ~%d -%d",
        source,
        stream,
        sync_id,
        result.table,
        result.version,
        result.inserted,
        result.updated,
        result.deleted,
    )
    emit_event(
        event=EVENT_APPLIED,
        resource={"prefect.resource.id": f"silver.table.{source}.{stream}", "source": source, "stream": stream},
        payload={
            "table": result.table,
            "version": result.version,
            "sync_id": sync_id,
            "manifest": manifest_url,
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
        },
    )
    return result
