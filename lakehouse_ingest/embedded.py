"""The embedded engine: one sync of a real Airbyte source connector into bronze, no Airbyte platform.

``plan_source`` does everything that can fail on bad input before a byte is written (install, spec
validation of the config, check, discover, stream selection and names). ``run_sync`` then streams the
connector's RECORD lines into Parquet parts per stream, in Airbyte's S3-destination layout, keeping
the latest STATE. A connector error removes the parts this sync published and raises with the
connector's own message; state is not touched here (it is committed after validation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa

from .arrow_types import StreamColumns, stream_columns
from .catalog import SourceEntry, StreamSelection
from .connector import Connector, ConnectorInstaller
from .errors import ConfigError, ConnectorError
from .layout import data_key, stream_prefix
from .names import safe_stream_dir
from .parquet_parts import PartWriter, PublishedPart
from .protocol import fast_record_stream, parse_message, state_stream_key, stream_key, trace_error_message
from .records import RecordConverter
from .state import load_state
from .storage import LakeStorage

Logger = logging.Logger | logging.LoggerAdapter[Any]
CONVERT_LINES = 10_000
PROGRESS_EVERY_SECONDS = 15.0
_LOG_LEVELS = {
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
}


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
class SourcePlan:
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


@dataclass
class StreamBatch:
    """What one sync wrote for one stream: the unit that is validated and handed to silver."""

    source: str
    stream: str
    namespace: str | None
    sync_id: int
    generation_id: int
    started_at: datetime
    prefix: str
    sync_mode: str
    destination_sync_mode: str
    primary_key: list[list[str]]
    cursor_field: list[str]
    schema: pa.Schema
    records: int = 0
    files: list[PublishedPart] = field(default_factory=list)

    @property
    def state_key(self) -> str:
        """How STREAM state messages name this stream (``namespace.name`` or ``name``)."""
        return stream_key(self.stream, self.namespace)

    @property
    def bytes(self) -> int:
        """Total size of the batch's files."""
        return sum(f.bytes for f in self.files)


@dataclass
class SyncOutcome:
    """A finished embedded sync: per-stream batches and the connector state to commit later."""

    source: str
    connector: str
    sync_id: int
    started_at: datetime
    finished_at: datetime
    batches: dict[str, StreamBatch]
    state_messages: list[dict[str, Any]]

    @property
    def records(self) -> int:
        """Records read across streams."""
        return sum(b.records for b in self.batches.values())


def plan_source(source: SourceEntry, installer: ConnectorInstaller, check: bool = True) -> SourcePlan:
    """Validate everything about ``source`` that can be validated before writing anything."""
    if source.connector is None:
        raise ConfigError(
            f"source {source.name!r} has a connection_id: Airbyte-server sources are not supported yet; "
            "give it a 'connector' to run it on the embedded engine"
        )
    connector = Connector(installer.executable(source.connector), source.name)
    validate_config(source, connector.spec())
    if check:
        connector.check(source.config)
    discovered = connector.discover(source.config)
    streams = select_streams(source, discovered)
    return SourcePlan(source=source, executable=connector.executable, streams=tuple(streams))


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


class _StreamSink:
    """Buffers one stream's raw RECORD lines and turns them into Parquet parts."""

    def __init__(self, batch: StreamBatch, converter: RecordConverter, writer: PartWriter) -> None:
        self.batch = batch
        self.converter = converter
        self.writer = writer
        self.lines: list[bytes] = []

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        if len(self.lines) >= CONVERT_LINES:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            table = self.converter.convert(self.lines)
            self.batch.records += table.num_rows
            self.writer.write(table)
            self.lines = []


def run_sync(
    plan: SourcePlan,
    bronze: LakeStorage,
    logger: Logger,
    compression: str = "snappy",
    part_max_rows: int = 1_000_000,
) -> SyncOutcome:
    """Run one embedded sync of ``plan`` into ``bronze``; raise ConnectorError if the connector fails."""
    source = plan.source
    state = load_state(bronze, source.name)
    started_at = datetime.now(UTC)
    sync_id = max(int(started_at.timestamp() * 1000), (state.last_sync_id or 0) + 1)
    started_at = datetime.fromtimestamp(sync_id / 1000, UTC)
    connector = Connector(plan.executable, source.name)
    logger.info("%s: sync %s started (%d streams)", source.name, sync_id, len(plan.streams))
    with bronze.staging_dir() as staging:
        sinks = _open_sinks(plan, bronze, staging, sync_id, started_at, state.generations, compression, part_max_rows)
        try:
            latest_states = _pump(connector, plan, state.connector_state(plan.full_refresh_keys), sinks, logger)
            for sink in sinks.values():
                sink.flush()
                sink.batch.files = sink.writer.close()
        except BaseException:
            _roll_back(sinks, bronze, logger)
            raise
    outcome = SyncOutcome(
        source=source.name,
        connector=source.connector.requirement if source.connector else "",
        sync_id=sync_id,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        batches={name: sink.batch for name, sink in sinks.items()},
        state_messages=list(latest_states.values()),
    )
    logger.info(
        "%s: sync %s read %d records in %.1f s",
        source.name,
        sync_id,
        outcome.records,
        (outcome.finished_at - started_at).total_seconds(),
    )
    return outcome


def _open_sinks(
    plan: SourcePlan,
    bronze: LakeStorage,
    staging: Path,
    sync_id: int,
    started_at: datetime,
    generations: dict[str, int],
    compression: str,
    part_max_rows: int,
) -> dict[str, _StreamSink]:
    sinks: dict[str, _StreamSink] = {}
    for stream in plan.streams:
        # As the platform does: every full-refresh read (appended or not) starts a new generation.
        bump = stream.sync_mode == "full_refresh" or stream.destination_sync_mode == "overwrite"
        generation = generations.get(stream.name, 0) + (1 if bump else 0)
        columns = stream.columns
        batch = StreamBatch(
            source=plan.source.name,
            stream=stream.name,
            namespace=stream.namespace,
            sync_id=sync_id,
            generation_id=generation,
            started_at=started_at,
            prefix=stream_prefix(plan.source.name, stream.name),
            sync_mode=stream.sync_mode,
            destination_sync_mode=stream.destination_sync_mode,
            primary_key=stream.primary_key,
            cursor_field=stream.cursor_field,
            schema=columns.arrow_schema,
        )
        stream_staging = staging / safe_stream_dir(stream.name)
        stream_staging.mkdir()
        writer = PartWriter(
            bronze,
            stream_staging,
            columns.arrow_schema,
            partial(data_key, plan.source.name, stream.name, started_at),
            part_max_rows,
            compression,
        )
        sinks[stream.name] = _StreamSink(batch, RecordConverter(stream.name, columns, sync_id, generation), writer)
    return sinks


def _pump(
    connector: Connector,
    plan: SourcePlan,
    connector_state: Any,
    sinks: dict[str, _StreamSink],
    logger: Logger,
) -> dict[str, dict[str, Any]]:
    """Route every line of ``read`` to its stream sink; return the latest STATE per stream/global."""
    latest_states: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    records = 0
    next_progress = time.monotonic() + PROGRESS_EVERY_SECONDS
    with connector.read(plan.source.config, plan.configured_catalog(), connector_state) as process:
        for chunk in process.chunks():
            for line in chunk:
                stream = fast_record_stream(line)
                if stream is None:
                    stream = _handle_message(line, latest_states, errors, logger, plan.source.name)
                if stream is not None:
                    sink = sinks.get(stream)
                    if sink is None:
                        errors.append(f"connector emitted a record for unselected stream {stream!r}")
                        continue
                    sink.add(line)
                    records += 1
            if time.monotonic() >= next_progress:
                logger.info("%s: %d records read so far", plan.source.name, records)
                next_progress = time.monotonic() + PROGRESS_EVERY_SECONDS
        code = process.wait()
        if errors or code != 0:
            detail = errors[-1] if errors else process.stderr_tail()
            raise ConnectorError(f"{plan.source.name}: connector read failed (exit {code}): {detail}")
    return latest_states


def _handle_message(
    line: bytes,
    latest_states: dict[str, dict[str, Any]],
    errors: list[str],
    logger: Logger,
    source: str,
) -> str | None:
    """Handle a non-fast-path line; return the stream name when it is a RECORD."""
    message = parse_message(line)
    if message is None:
        if line.strip():
            logger.debug("%s connector: %s", source, line[:500].decode(errors="replace").rstrip())
        return None
    kind = message["type"]
    if kind == "RECORD":
        record = message.get("record") or {}
        return str(record.get("stream")) if record.get("stream") is not None else None
    if kind == "STATE":
        state = message.get("state") or {}
        key = state_stream_key(state)
        latest_states[f"stream:{key}" if key is not None else "shared"] = state
    elif kind == "LOG":
        log = message.get("log") or {}
        level = _LOG_LEVELS.get(str(log.get("level")), logging.DEBUG)
        logger.log(level, "%s connector: %s", source, str(log.get("message", ""))[:2000])
    elif kind == "TRACE":
        error = trace_error_message(message)
        if error:
            errors.append(error)
            logger.error("%s connector error: %s", source, error)
    return None


def _roll_back(sinks: dict[str, _StreamSink], bronze: LakeStorage, logger: Logger) -> None:
    """Remove every part this failed sync published, so no partial batch stays behind."""
    for sink in sinks.values():
        sink.writer.abort()
        for part in sink.writer.published:
            bronze.delete(part.key)
        if sink.writer.published:
            logger.warning("removed %d partial file(s) of %s", len(sink.writer.published), sink.batch.prefix)
