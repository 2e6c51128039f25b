"""Silver flow: merge validated bronze batches into one Delta Lake table per stream, exactly once.

    python -m flows.silver [--source NAME ...] [--manifest LOCATION ...] [--catalog FILE] [--bronze URI] [--silver URI]

With ``--manifest`` (what the ``bronze.batch.validated`` event carries) it merges those batches; otherwise it
finds, for the selected sources, every manifest whose sync id is not yet in its silver table. Batches of one
stream are merged one after the other in sync order; different streams run concurrently.
Exit codes: 0 success, 1 a merge failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import add_lake_arguments, resolve_settings, select_sources
from lakehouse_ingest.errors import ConfigError, IngestError
from lakehouse_ingest.lake.keys import BatchKey, parse_manifest_location
from lakehouse_ingest.lake.storage import finalize_s3
from lakehouse_ingest.silver.result import SilverResult
from tasks.silver import apply_batch_task, pending_batches_task

ARTIFACT_KEY = "silver-merge-summary"


class SilverRunFailed(IngestError):
    """At least one batch could not be merged into silver."""


@flow(name="silver-merge", task_runner=ThreadPoolTaskRunner(max_workers=16))  # type: ignore[arg-type]
def silver_merge(
    sources: list[str] | None = None,
    manifests: list[str] | None = None,
    catalog: str | None = None,
    bronze: str | None = None,
    silver: str | None = None,
) -> list[dict[str, Any]]:
    """Merge the given (or all pending) bronze batches into silver."""
    settings = resolve_settings(catalog, bronze, silver)
    bronze_uri = settings.bronze_uri
    if manifests:
        located = [parse_manifest_location(m) for m in manifests]
        roots = {root for root, _ in located}
        if len(roots) > 1:
            raise ConfigError(f"manifests from several bronze roots: {', '.join(sorted(roots))}")
        bronze_uri = roots.pop() if roots != {"."} else bronze_uri
        batches = [batch for _, batch in located]
    else:
        names = [s.name for s in select_sources(settings, sources)]
        found = [pending_batches_task.submit(n, bronze_uri, settings.silver_uri) for n in names]
        batches = [batch for future in found for batch in future.result()]
    rows = _merge_in_sync_order(batches, bronze_uri, settings.silver_uri)
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=rows or [{"result": "nothing to merge"}],
        description=f"{sum(r['status'] == 'merged' for r in rows)} batch(es) merged into silver",
    )
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        raise SilverRunFailed(
            "; ".join(f"{r['source']}.{r['stream']} sync {r['sync_id']}: {r['detail']}" for r in failed)
        )
    get_run_logger().info(
        "silver: %d batch(es) merged, %d already there, %d stale (older than the table's full-refresh snapshot)",
        sum(r["status"] == "merged" for r in rows),
        sum(r["status"] == "already_applied" for r in rows),
        sum(r["status"] == "skipped_stale" for r in rows),
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
            row.update(
                status="merged" if result.applied else "skipped_stale" if result.skipped else "already_applied",
                table=result.table,
                version=result.version,
                inserted=result.inserted,
                updated=result.updated,
                deleted=result.deleted,
                detail=result.skipped or "",
            )
        else:
            error = future.state.result(raise_on_failure=False)
            row.update(
                status="failed", detail=str(error) if isinstance(error, BaseException) else "an earlier batch failed"
            )
        rows.append(row)
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.silver",
        description="Merge validated bronze batches into one Delta Lake table per stream. "
        "Exit codes: 0 ok, 1 a merge failed, 2 bad input.",
    )
    add_lake_arguments(parser, "source to merge")
    parser.add_argument(
        "--manifest", action="append", metavar="LOCATION", help="a bronze manifest to merge (repeatable)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = resolve_settings(args.catalog, args.bronze, args.silver)
        for location in args.manifest or []:
            parse_manifest_location(location)
        if not args.manifest:
            select_sources(settings, args.source)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_silver(args.source, args.manifest, args.catalog, args.bronze, args.silver)


def run_silver(
    sources: list[str] | None,
    manifests: list[str] | None,
    catalog: str | None,
    bronze: str | None,
    silver: str | None,
) -> int:
    """Run the silver flow and print its results; returns the exit code."""
    state = silver_merge(sources, manifests, catalog, bronze, silver, return_state=True)
    if state.is_completed():
        for row in state.result():
            if row["status"] == "merged":
                print(
                    f"silver {row['source']}.{row['stream']}: sync {row['sync_id']} -> {row['table']} "
                    f"(v{row['version']}: +{row['inserted']} ~{row['updated']} -{row['deleted']})"
                )
            elif row["status"] == "skipped_stale":
                print(f"silver {row['source']}.{row['stream']}: sync {row['sync_id']} skipped: {row['detail']}")
        return 0
    error = state.result(raise_on_failure=False)
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, ConfigError) else 1


if __name__ == "__main__":
    from flows.silver import main as _main

    try:
        exit_code = _main()
    finally:
        finalize_s3()
    sys.exit(exit_code)
