"""Planning an embedded sync: everything that can fail on bad input, before a byte is written.

``plan_source`` installs the connector (if needed), validates the config against the connector's spec,
runs ``check`` and ``discover``, and resolves the catalog's stream selection (sync modes, cursors, primary
keys, stream and column names). The result, an ``EmbeddedPlan``, is what ``sync.run_embedded_sync`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from lakehouse_ingest.bronze.arrow_types import StreamColumns, stream_columns
from lakehouse_ingest.catalog.sources import SourceEntry, StreamSelection
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import safe_stream_dir, stream_key
from lakehouse_ingest.sources.embedded.connector import Connector, ConnectorInstaller


@dataclass(frozen=True)
class StreamPlan:
    """One configured stream: what to read and how it lands."""

    name: str
    namespace: str | None
    json_schema: dict[str, Any]
    sync_mode: str
    destination_sync_mode: str
    cursor_field: list[str]
    primary_key: list[list[str]]

    @property
    def state_key(self) -> str:
        """How STREAM state messages name this stream (``namespace.name`` or ``name``)."""
        return stream_key(self.name, self.namespace)

    @property
    def columns(self) -> StreamColumns:
        """The Parquet columns of this stream."""
        return stream_columns(self.json_schema)

    def configured(self) -> dict[str, Any]:
        """The ConfiguredAirbyteStream the connector's ``read`` expects."""
        stream: dict[str, Any] = {
            "name": self.name,
            "json_schema": self.json_schema,
            "supported_sync_modes": ["full_refresh", "incremental"],
        }
        if self.namespace:
            stream["namespace"] = self.namespace
        return {
            "stream": stream,
            "sync_mode": self.sync_mode,
            "destination_sync_mode": self.destination_sync_mode,
            "cursor_field": self.cursor_field,
            "primary_key": self.primary_key,
        }


@dataclass(frozen=True)
class EmbeddedPlan:
    """A source ready to sync: its connector executable and configured streams."""

    source: SourceEntry
    executable: Path
    streams: tuple[StreamPlan, ...]

    def configured_catalog(self) -> dict[str, Any]:
        """The ConfiguredAirbyteCatalog for ``read``."""
        return {"streams": [s.configured() for s in self.streams]}

    @property
    def full_refresh_keys(self) -> frozenset[str]:
        """State keys of the streams read in full, which get no state (see ``SourceState.connector_state``)."""
        return frozenset(s.state_key for s in self.streams if s.sync_mode == "full_refresh")


def plan_source(source: SourceEntry, installer: ConnectorInstaller, check: bool = True) -> EmbeddedPlan:
    """Validate everything about ``source`` that can be validated before writing anything."""
    if source.connector is None:
        raise ConfigError(f"source {source.name!r} has no 'connector' to run on the embedded engine")
    connector = Connector(installer.executable(source.connector), source.name)
    validate_config(source, connector.spec())
    if check:
        connector.check(source.config)
    discovered = connector.discover(source.config)
    streams = select_streams(source, discovered)
    return EmbeddedPlan(source=source, executable=connector.executable, streams=tuple(streams))


def validate_config(source: SourceEntry, spec: dict[str, Any]) -> None:
    """Validate the source config against the connector's spec; errors never echo values (secrets)."""
    schema = spec.get("connectionSpecification") or {}
    validator = jsonschema.Draft7Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(source.config))
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path) or "config"
    if error.validator == "required":
        problem = error.message.split(" is a required")[0] + " is required"
    elif error.validator in {"type", "minimum", "maximum", "enum", "const", "pattern", "format"}:
        problem = f"fails {error.validator} {error.validator_value!r}"
    else:
        problem = f"fails {error.validator}"
    raise ConfigError(f"source {source.name!r}: invalid connector config: {where}: {problem}")


def select_streams(source: SourceEntry, discovered: Sequence[dict[str, Any]]) -> list[StreamPlan]:
    """The configured streams: the catalog's selection (or all), with sync modes resolved."""
    by_name = {s["name"]: s for s in discovered}
    for name in by_name:
        safe_stream_dir(name)
    selections = source.streams or [StreamSelection(name=n) for n in by_name]
    unknown = [s.name for s in selections if s.name not in by_name]
    if unknown:
        raise ConfigError(
            f"source {source.name!r}: unknown stream {unknown[0]!r}; the connector offers: {', '.join(by_name)}"
        )
    plans = [_stream_plan(by_name[s.name], s) for s in selections]
    for plan in plans:
        plan.columns  # noqa: B018 - raises ConfigError on colliding column names, before any write
    return plans


def _stream_plan(stream: dict[str, Any], selection: StreamSelection) -> StreamPlan:
    modes = stream.get("supported_sync_modes") or ["full_refresh"]
    cursor = selection.cursor_field or stream.get("default_cursor_field") or []
    incremental_ok = "incremental" in modes and bool(cursor)
    mode = selection.sync_mode or ("incremental" if incremental_ok else "full_refresh")
    if mode == "incremental" and not incremental_ok:
        raise ConfigError(f"stream {stream['name']!r} does not support incremental sync with a cursor")
    return StreamPlan(
        name=stream["name"],
        namespace=stream.get("namespace"),
        json_schema=stream.get("json_schema") or {},
        sync_mode=mode,
        destination_sync_mode=selection.destination_sync_mode,
        cursor_field=list(cursor) if mode == "incremental" else [],
        primary_key=selection.primary_key or stream.get("source_defined_primary_key") or [],
    )
