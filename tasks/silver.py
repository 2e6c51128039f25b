"""Prefect tasks of the silver layer: find pending manifests, merge one batch into its Delta table.

Merges of one table do not overlap, whichever flow runs they belong to: a silver run holds its sources' one-slot
global concurrency limits (``source_slots``; ``lakehouse_ingest.runs.naming.source_limit_name``) while it merges,
and within a run each table's batches are merged one after the other. A slot still taken after
``SILVER_SLOT_WAIT_SECONDS`` (a run that died holding it) is merged without: commits are conflict-checked anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress

from prefect import get_client, get_run_logger
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError  # what concurrency() raises; not re-exported
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
# How long a slot outlives a holder that stopped renewing it (Prefect renews every three quarters of it): a run killed
# while merging (kill -9, out of memory) holds its source's slot until then, plus up to 15 s for the server's
# repossessor to free it. 60 s is the least the server accepts; Prefect's default, 300 s, kept the next run's silver
# waiting five minutes after such a kill.
SOURCE_SLOT_LEASE = 60.0

_limits_made: set[str] = set()
_limits_lock = threading.Lock()


@contextmanager
def source_slots(sources: Iterable[str], wait: float) -> Iterator[None]:
    """Hold the one-slot global concurrency limit of each source (created the first time a source needs it) for
    the ``with`` block: silver runs of one source take turns, runs of different sources merge side by side.

    After ``wait`` seconds (``SILVER_SLOT_WAIT_SECONDS``) without the slots, the block runs without them, with a
    warning. The slots only spare concurrent runs conflicting commits (every commit is conflict-checked, so each
    batch is applied once either way), and a slot can stay taken for good: a Prefect server without its services
    (the temporary one of a CLI run, the test harness) never frees the slot of a run killed holding it. (The wait
    was an hour, and such a kill blocked every later silver run of the source for that hour.)

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
    with ExitStack() as held:
        try:
            held.enter_context(
                concurrency(names, occupy=1, timeout_seconds=wait, lease_duration=SOURCE_SLOT_LEASE, strict=True)
            )
        except TimeoutError:
            get_run_logger().warning(
                "silver slot(s) %s still taken after %.0f s (another silver run of the source is merging, or one "
                "died holding it: `prefect gcl update <name> --active-slots 0` frees it): merging without it; every "
                "commit is conflict-checked, so each batch is still applied once",
                _few(names),
                wait,
            )
        except ConcurrencySlotAcquisitionError as exc:
            # The server refused the acquisition itself (a 503 from a busy server: seen with 100 sources in one
            # run on two loaded cores). The slots are a courtesy, not the guarantee: merge without them.
            get_run_logger().warning(
                "silver slot(s) %s could not be acquired (%s): merging without them; every commit is "
                "conflict-checked, so each batch is still applied once",
                _few(names),
                str(exc).rsplit(": ", 1)[-1],
            )
        yield


def _few(names: list[str], shown: int = 3) -> str:
    """``names`` for a log line: the first few and how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


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
