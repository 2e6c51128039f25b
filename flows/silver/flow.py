"""Silver flow: merge validated bronze batches into one Delta Lake table per stream, exactly once.

With ``manifests`` (what the ``bronze.batches.validated`` event carries: every batch one bronze run handed off
for a source) it merges those batches; otherwise it finds, for the selected sources, every manifest whose sync
id is not yet in its silver table. Batches of one stream are merged one after the other in sync order; different
streams run concurrently; silver runs of one source take turns (``tasks.silver.source_slots``), so merges into
one table never overlap.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runs import silver_run_name, tag_this_run
from lakehouse_ingest.errors import ConfigError, IngestError
from lakehouse_ingest.lake.keys import BatchKey, parse_manifest_location
from lakehouse_ingest.runs.inputs import resolve_settings, select_sources
from lakehouse_ingest.runs.naming import run_tags
from lakehouse_ingest.runs.parameters import Names, SilverParameters, Text, checked
from lakehouse_ingest.runs.status import MergeStatus
from lakehouse_ingest.silver.result import SilverResult
from tasks.silver import apply_batch_task, pending_batches_task, source_slots

ARTIFACT_KEY = "silver-merge-summary"


class SilverRunFailed(IngestError):
    """At least one batch could not be merged into silver."""


@flow(
    name="silver-merge",
    flow_run_name=silver_run_name,
    validate_parameters=False,
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
)
def silver_merge(
    sources: Names = None,
    manifests: Names = None,
    catalog: Text = None,
    bronze: Text = None,
    silver: Text = None,
) -> list[dict[str, Any]]:
    """Merge validated bronze batches into one Delta table per stream, each batch exactly once.

    Args:
        sources: Names of the catalog's sources whose waiting batches to merge, when no manifests are given. Left
            empty: every source of the catalog.
        manifests: Locations of the bronze manifests to merge (the bronze.batches.validated event lists them).
            Left empty: every batch of the sources above that is not in silver yet.
        catalog: Path of the YAML catalog on the worker (used to list the sources). Left empty: the worker's
            CATALOG variable, else the built-in catalog.
        bronze: The bronze root to look batches up in, when no manifests are given (manifests name their own).
            Left empty: the worker's BRONZE_URI, else ./lakehouse/bronze.
        silver: Where the Delta tables are: a directory on the worker, or s3://bucket/prefix. Left empty: the
            worker's SILVER_URI, else ./lakehouse/silver.
    """
    given = checked(
        SilverParameters, sources=sources, manifests=manifests, catalog=catalog, bronze=bronze, silver=silver
    )
    settings = resolve_settings(given.catalog, given.bronze, given.silver)
    bronze_uri = settings.bronze_uri
    if given.manifests:
        located = [parse_manifest_location(m) for m in given.manifests]
        roots = {root for root, _ in located}
        if len(roots) > 1:
            raise ConfigError(f"manifests from several bronze roots: {', '.join(sorted(roots))}")
        bronze_uri = roots.pop() if roots != {"."} else bronze_uri
        batches = [batch for _, batch in located]
    else:
        names = [s.name for s in select_sources(settings, given.sources)]
        tag_this_run(run_tags(names))
        found = [pending_batches_task.submit(n, bronze_uri, settings.silver_uri) for n in names]
        batches = [batch for future in found for batch in future.result()]
    tag_this_run(run_tags({b.source for b in batches}, {(b.source, b.stream) for b in batches}))
    with source_slots((b.source for b in batches), settings.silver_slot_wait_seconds):
        rows = _merge_in_sync_order(batches, bronze_uri, settings.silver_uri)
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=rows or [{"result": "nothing to merge"}],
        description=f"{sum(r['status'] == MergeStatus.MERGED for r in rows)} batch(es) merged into silver",
    )
    failed = [r for r in rows if r["status"] == MergeStatus.FAILED]
    if failed:
        raise SilverRunFailed(
            "; ".join(f"{r['source']}.{r['stream']} sync {r['sync_id']}: {r['detail']}" for r in failed)
        )
    get_run_logger().info(
        "silver: %d batch(es) merged, %d already there, %d stale (older than the table's full-refresh snapshot)",
        *(sum(r["status"] == s for r in rows) for s in MergeStatus if s is not MergeStatus.FAILED),
    )
    return rows


def _merge_in_sync_order(batches: list[BatchKey], bronze_uri: str, silver_uri: str) -> list[dict[str, Any]]:
    """One chain per stream (each batch waits for the previous one), streams side by side."""
    by_stream: dict[tuple[str, str], list[BatchKey]] = defaultdict(list)
    for batch in sorted(set(batches), key=lambda b: b.sync_id):
        by_stream[(batch.source, batch.stream)].append(batch)
    futures: list[tuple[BatchKey, PrefectFuture[SilverResult]]] = []
    for chain in by_stream.values():
        previous: PrefectFuture[SilverResult] | None = None
        for batch in chain:
            after: list[PrefectFuture[Any]] = [previous] if previous is not None else []
            previous = apply_batch_task.submit(batch, bronze_uri, silver_uri, wait_for=after, return_state=False)
            futures.append((batch, previous))
    rows = []
    for batch, future in futures:
        future.wait()
        row: dict[str, Any] = {"source": batch.source, "stream": batch.stream, "sync_id": batch.sync_id}
        if future.state.is_completed():
            result = future.result()
            status = (
                MergeStatus.MERGED
                if result.applied
                else MergeStatus.SKIPPED_STALE
                if result.skipped
                else MergeStatus.ALREADY_APPLIED
            )
            row.update(
                status=status.value,
                table=result.table,
                version=result.version,
                inserted=result.inserted,
                updated=result.updated,
                deleted=result.deleted,
                detail=result.skipped or "",
            )
        else:
            error = future.state.result(raise_on_failure=False)
            detail = str(error) if isinstance(error, BaseException) else "an earlier batch failed"
            row.update(status=MergeStatus.FAILED.value, detail=detail)
        rows.append(row)
    return rows
