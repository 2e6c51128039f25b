"""The command line of both flows: ``python -m flows.bronze`` and ``python -m flows.silver``.

Exit codes (both): 0 success, 1 a sync, validation or merge failed (may pass on a retry), 2 bad input (unknown
source, malformed catalog, invalid connector config, unsafe names or URIs; nothing is written).

Everything that can be answered or refused without running a flow (``--help``, ``--dry-run``, ``--janitor``, bad
options, catalog, URIs, connector configs) is, before Prefect is imported: Prefect starts in about a second, and a
flow run on its temporary server in several more. Argument parsing needs no more than ``argparse``: the core
(pydantic, pyarrow, httpx, jsonschema) loads once the arguments parse, and only the parts the command needs, so
``--help`` and argument errors answer in about a bare interpreter's start-up (``bench/cli_startup.py``;
``tests/test_cli_imports.py`` keeps it so).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse_ingest.errors import ConfigError, IngestError  # plain Python, imports nothing

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from lakehouse_ingest.settings import IngestSettings

BAD_INPUT, FAILED, OK = 2, 1, 0


def bronze_main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.bronze``: sync, validate and hand off; then silver unless ``--no-silver``."""
    parser = _bronze_parser()
    args = parser.parse_args(argv)
    if args.janitor and (args.revalidate or args.force):
        parser.error("--janitor syncs nothing: it takes --dry-run and --source, not --revalidate or --force")
    from lakehouse_ingest.lake.keys import parse_batch_id
    from lakehouse_ingest.runs.inputs import preflight, resolve_settings, select_sources

    try:
        settings = resolve_settings(args.catalog, args.bronze, args.silver)
        if args.janitor:
            return janitor(settings, args.source, args.dry_run)
        for item in args.revalidate or []:
            parse_batch_id(item)
        if args.dry_run:
            from lakehouse_ingest.lake.roots import opened_storage
            from lakehouse_ingest.runs.dry_run import describe_run
            from lakehouse_ingest.runs.schedule import too_soon_reasons

            selected = select_sources(settings, args.source)
            skips: dict[str, str] = {}
            if not args.force:
                with opened_storage(settings.bronze_uri) as bronze:
                    skips = too_soon_reasons(bronze, selected, datetime.now(UTC))
            uris = (settings.bronze_uri, settings.silver_uri)
            print("\n".join(describe_run(*uris, selected, skips, args.force, not args.no_silver)))
            return OK
        preflight(settings, args.source, _say)
    except IngestError as exc:
        return _refused(exc)
    lake = (args.catalog, args.bronze, args.silver)
    if args.revalidate:
        from flows.bronze.flow import bronze_revalidate

        state = bronze_revalidate(args.revalidate, *lake, return_state=True)
    else:
        from flows.bronze.flow import bronze_ingest

        state = bronze_ingest(args.source, *lake, args.force, return_state=True)
    code = _finished(state, _print_bronze_rows)
    if args.no_silver or code == BAD_INPUT:
        return code
    # The demo shows both layers: whatever was handed off (even by a partly failed run) goes on to silver.
    return max(code, run_silver(args.source, None, *lake))


def janitor(settings: IngestSettings, sources: list[str] | None, dry_run: bool) -> int:
    """``python -m flows.bronze --janitor [--dry-run]``: remove (or list) what dead syncs left, one line each on
    stdout; a summary line, sources left alone and errors on stderr. Exit 1 when something could not be listed or
    removed (it stays; run again); an unknown source is a ``ConfigError`` (exit 2, nothing removed)."""
    from lakehouse_ingest.lake.roots import opened_storage
    from lakehouse_ingest.runs.inputs import select_sources
    from lakehouse_ingest.runs.janitor import sweep

    selected = select_sources(settings, sources)
    with opened_storage(settings.bronze_uri) as bronze:
        found = sweep(bronze, selected, datetime.now(UTC), dry_run)
    for name in found.left_alone:
        _say(f"{name}: left alone (an Airbyte-server source: its files belong to Airbyte jobs, which it hands off)")
    for name, error in found.failed:
        print(f"error: {name}: {error}", file=sys.stderr)
    for source, item in found.items:
        where = f"{source}: " if source else ""
        if item.error:
            print(f"error: {where}could not remove {item.kind} {item.location}: {item.error}", file=sys.stderr)
        else:
            print(where + item.line(dry_run))
    done = [item for _, item in found.items if not item.error]
    counts = Counter(str(item.kind) for item in done)
    listed = ", ".join(f"{n} {kind}(s)" for kind, n in counts.items()) or "nothing"
    _say(f"janitor: {listed} {'to remove (dry run: nothing removed)' if dry_run else 'removed'}")
    return FAILED if found.errors else OK


def silver_main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.silver``: merge the given (or every pending) manifest into silver."""
    args = _silver_parser().parse_args(argv)
    from lakehouse_ingest.lake.keys import parse_manifest_location
    from lakehouse_ingest.runs.inputs import resolve_settings, select_sources

    try:
        settings = resolve_settings(args.catalog, args.bronze, args.silver)
        for location in args.manifest or []:
            parse_manifest_location(location)
        if not args.manifest:
            select_sources(settings, args.source)
    except IngestError as exc:
        return _refused(exc)
    return run_silver(args.source, args.manifest, args.catalog, args.bronze, args.silver)


def run_silver(
    sources: list[str] | None,
    manifests: list[str] | None,
    catalog: str | None,
    bronze: str | None,
    silver: str | None,
) -> int:
    """Run the silver flow and print its results; returns the exit code."""
    from flows.silver.flow import silver_merge

    state = silver_merge(sources, manifests, catalog, bronze, silver, return_state=True)
    return _finished(state, _print_silver_rows)


def exit_cleanly(main: Callable[[], int]) -> int:
    """Run an entry point, then shut pyarrow's S3 subsystem down before interpreter teardown (a process that
    succeeded must not abort at exit: apache/arrow#41087)."""
    try:
        return main()
    finally:
        if "lakehouse_ingest.lake.s3" in sys.modules:  # else no S3 client was made (--help): nothing to shut down
            from lakehouse_ingest.lake.s3 import finalize_s3

            finalize_s3()


def _refused(error: IngestError) -> int:
    print(f"error: {error}", file=sys.stderr)
    return BAD_INPUT if isinstance(error, ConfigError) else FAILED


def _finished(state: State[Any], print_rows: Callable[[list[dict[str, Any]]], None]) -> int:
    """Print a finished flow run's rows, or its error; the exit code."""
    if state.is_completed():
        print_rows(state.result())
        return OK
    error = state.result(raise_on_failure=False)
    print(f"error: {error}", file=sys.stderr)
    return BAD_INPUT if isinstance(error, ConfigError) else FAILED


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_bronze_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["status"] == "skipped":
            print(f"{row['source']}: {row['detail']}")
            continue
        print(
            f"{row['source']}.{row['stream']}: {row['rows']} rows in {row['files']} file(s), "
            f"{row['bytes']} bytes, checks {row['checks']} -> {row['detail']}"
        )


def _print_silver_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["status"] == "merged":
            print(
                f"silver {row['source']}.{row['stream']}: sync {row['sync_id']} -> {row['table']} "
                f"(v{row['version']}: +{row['inserted']} ~{row['updated']} -{row['deleted']})"
            )
        elif row["status"] == "skipped_stale":
            print(f"silver {row['source']}.{row['stream']}: sync {row['sync_id']} skipped: {row['detail']}")


def _lake_arguments(parser: argparse.ArgumentParser, source_help: str) -> None:
    """The options both commands take: --source, --catalog, --bronze, --silver."""
    parser.add_argument("--source", action="append", metavar="NAME", help=f"{source_help} (repeatable; default: all)")
    parser.add_argument("--catalog", metavar="FILE", help="YAML catalog of sources (default: $CATALOG or built-in)")
    parser.add_argument(
        "--bronze",
        metavar="URI",
        help="bronze root: a directory or s3://bucket[/prefix] (default: $BRONZE_URI or ./lakehouse/bronze)",
    )
    parser.add_argument("--silver", metavar="URI", help="silver root (default: $SILVER_URI or ./lakehouse/silver)")


def _bronze_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bronze",
        description="Sync Airbyte sources into the bronze layer, validate the Parquet that landed and "
        "hand validated batches to silver. Exit codes: 0 ok, 1 sync or validation failed, 2 bad input.",
    )
    _lake_arguments(parser, "source to sync")
    parser.add_argument(
        "--revalidate",
        action="append",
        metavar="SOURCE/STREAM/SYNC_ID",
        help="validate a quarantined batch again (after a fix) and hand it off if it passes",
    )
    parser.add_argument(
        "--no-silver",
        action="store_true",
        help="stop after bronze (silver then runs on its own, e.g. from the bronze.batch.validated event)",
    )
    parser.add_argument("--force", action="store_true", help="sync even when a source's min_interval has not passed")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would run (sources, streams, targets, skips), or with --janitor what it would remove; "
        "write nothing",
    )
    parser.add_argument(
        "--janitor",
        action="store_true",
        help="sync nothing: remove what dead syncs left (the embedded sources' orphaned parts and sync records; "
        "this machine's staging and connector folders of dead processes), one line each",
    )
    return parser


def _silver_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.silver",
        description="Merge validated bronze batches into one Delta Lake table per stream. "
        "Exit codes: 0 ok, 1 a merge failed, 2 bad input.",
    )
    _lake_arguments(parser, "source to merge")
    parser.add_argument(
        "--manifest", action="append", metavar="LOCATION", help="a bronze manifest to merge (repeatable)"
    )
    return parser
