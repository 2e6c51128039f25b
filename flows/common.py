"""What the bronze and silver flows share: settings with CLI/parameter overrides, source selection."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse_ingest.catalog.sources import SourceEntry, load_catalog
from lakehouse_ingest.lake.storage import open_storage
from lakehouse_ingest.settings import IngestSettings


def resolve_settings(catalog: str | None, bronze: str | None, silver: str | None) -> IngestSettings:
    """Environment settings with explicit arguments taking precedence; URIs validated."""
    overrides = {k: v for k, v in {"catalog": catalog, "bronze_uri": bronze, "silver_uri": silver}.items() if v}
    settings = IngestSettings(**overrides)  # type: ignore[arg-type]
    for uri in (settings.bronze_uri, settings.silver_uri):
        open_storage(uri).close()
    return settings


def select_sources(settings: IngestSettings, sources: Sequence[str] | None) -> list[SourceEntry]:
    """The catalog's sources named (all when none are)."""
    return load_catalog(settings.catalog).select(sources)


def add_lake_arguments(parser: argparse.ArgumentParser, source_help: str) -> None:
    """The options every CLI here takes: --source, --catalog, --bronze, --silver."""
    parser.add_argument("--source", action="append", metavar="NAME", help=f"{source_help} (repeatable; default: all)")
    parser.add_argument("--catalog", metavar="FILE", help="YAML catalog of sources (default: $CATALOG or built-in)")
    parser.add_argument(
        "--bronze",
        metavar="URI",
        help="bronze root: a directory or s3://bucket[/prefix] (default: $BRONZE_URI or ./lakehouse/bronze)",
    )
    parser.add_argument("--silver", metavar="URI", help="silver root (default: $SILVER_URI or ./lakehouse/silver)")
