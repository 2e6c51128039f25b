"""Prefect tasks of the silver layer: find pending manifests, merge one batch into its Delta table.

Merges of one table never overlap, whichever flow runs they belong to: a silver run holds its sources' one-slot
global concurrency limits (``source_slots``; ``lakehouse_ingest.runs.naming.source_limit_name``) while it merges,
and within a run each table's batches are merged one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from prefect import get_client, get_run_logger
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.events import emit_event
from prefect.exceptions import ObjectAlreadyExists

from lakehouse_ingest.bronze.manifest import load_manifest, set_aside
from lakehouse_ingest.errors import DocumentError
from lakehouse_ingest.lake.keys import BatchKey, manifest_key, parse_manifest_key, source_prefix
from lakehouse_ingest.lake.roots import opened_storage
from lakehouse_ingest.runs.naming import source_limit_name
from lakehouse_ingest.silver.merge import apply_manifest
from lakehouse_ingest.silver.result import SilverResult
from lakehouse_ingest.silver.tables import SilverTables
from tasks.retrying import transient_retrying_task

EVENT_APPLIED = "silver.batch.applied"
# How long a silver run waits for its sources' slots (another run merging batches of the same source) before failing.
SOURCE_SLOT_TIMEOUT = 3600.0

_limits_made: set[str] = set()
_limits_lock = threading.Lock()


@contextmanager
def source_slots(sources: Iterable[str]) -> Iterator[None]:
    """Hold the one-slot global concurrency limit of each source (created the first time a source needs it) for
    the ``with`` block: silver runs of one source take turns, runs of different sources merge side by side.

    One limit per source rather than per table: each acquisition costs Prefect a service thread, an HTTP client
    and a lease renewal thread (about 8 s for 20 tables at once on two busy cores), and a source's batches of one
    bronze run are merged by one silver run anyway.
    """
    names = sorted({source_limit_name(source) for source in sources})
    if not names:
        yield
        return
    with _limits_lock:
        missing = [name for name in names if name not in _limits_made]
    if missing:
        with get_client(sync_client=True) as client:
            for name in missing:
                with suppress(ObjectAlreadyExists):
                    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        with _limits_lock:
            _limits_made.update(missing)
    with concurrency(names, occupy=1, timeout_seconds=SOURCE_SLOT_TIMEOUT, strict=True):
        yield


@transient_retrying_task("find-pending-batches", "find-pending-{source}")
def pending_batches_task(source: str, bronze_uri: str, silver_uri: str) -> list[BatchKey]:
    """Manifests of ``source`` whose sync id is not yet in its silver table, oldest first."""
    found: set[BatchKey] = set()
    with opened_storage(bronze_uri) as bronze:
        for obj in bronze.list(source_prefix(source)):
            if batch := parse_manifest_key(obj.key):
                found.add(batch)
    with opened_storage(silver_uri) as silver:
        tables = SilverTables(silver)
        applied = {
            stream: tables.applied_sync_ids(source, stream, candidates={b.sync_id for b in found if b.stream == stream})
            for stream in {b.stream for b in found}
        }
    pending = sorted((b for b in found if b.sync_id not in applied[b.stream]), key=lambda b: (b.stream, b.sync_id))
    get_run_logger().info("%s: %d batch(es) waiting for silver", source, len(pending))
    return pending


@transient_retrying_task("merge-into-silver", "silver-{batch.source}-{batch.stream}-{batch.sync_id}")
def apply_batch_task(batch: BatchKey, bronze_uri: str, silver_uri: str) -> SilverResult:
    """Merge one validated bronze batch (read from its manifest) into the stream's silver table."""
    source, stream, sync_id = batch.source, batch.stream, batch.sync_id
    with opened_storage(bronze_uri) as bronze, opened_storage(silver_uri) as silver:
        try:
            manifest = load_manifest(bronze, source, stream, sync_id)
        except DocumentError as exc:  # set aside, so that the stream's next batches are not blocked by it
            aside = set_aside(bronze, source, stream, sync_id, exc)
            raise DocumentError(f"{exc}; set aside as {aside}") from exc
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
