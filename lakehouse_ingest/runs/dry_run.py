"""What a run would do, one line per fact, for ``--dry-run``: computed from the catalog and the lake's
records, nothing synced or written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.lake.keys import source_prefix


def describe_run(
    bronze_uri: str,
    silver_uri: str,
    selected: Sequence[SourceEntry],
    skips: Mapping[str, str],
    force: bool,
    silver: bool,
) -> list[str]:
    """The dry run's lines; ``skips``: why each source that is too soon would be skipped."""
    lines = [f"dry run: nothing is synced or written. bronze: {bronze_uri}  silver: {silver_uri}"]
    for source in selected:
        if source.connector is not None:
            engine = f"embedded connector {source.connector.describe}"
        else:
            engine = f"Airbyte connection {source.connection_id or source.connection_name!r}"
        streams = ", ".join(s.name for s in source.streams) if source.streams else "every stream it discovers"
        lines.append(f"{source.name}: {engine}; streams: {streams}")
        lines.append(f"  bronze: {bronze_uri.rstrip('/')}/{source_prefix(source.name)}/<stream>/")
        if source.name in skips:
            lines.append(f"  would be {skips[source.name]}")
        elif source.min_interval:
            lines.append(f"  would sync (min_interval {source.min_interval}: {'forced' if force else 'not too soon'})")
    if silver:
        lines.append(f"then silver: merge the handed-off batches into {silver_uri.rstrip('/')}/<source>/<stream>")
    return lines
