"""One embedded sync of a planned source (``plan.EmbeddedPlan``) into bronze.

``run_embedded_sync`` streams the
connector's RECORD lines into Parquet parts per stream, in Airbyte's S3-destination layout, keeping
the latest STATE. A connector error removes the parts this sync published and raises with the
connector's own message; state is not touched here (it is committed after validation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.janitor import claim_sync, release_sync, remove_orphans
from lakehouse_ingest.bronze.parts import PartWriter
from lakehouse_ingest.errors import ConnectorError
from lakehouse_ingest.lake.keys import data_key, stream_prefix
from lakehouse_ingest.lake.names import safe_stream_dir
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.embedded.connector import Connector
from lakehouse_ingest.sources.embedded.plan import EmbeddedPlan
from lakehouse_ingest.sources.embedded.records import RecordConverter
from lakehouse_ingest.sources.embedded.state import load_state
from lakehouse_ingest.sources.protocol import fast_record_stream, parse_message, state_stream_key, trace_error_message

Logger = logging.Logger | logging.LoggerAdapter[Any]
CONVERT_LINES = 10_000
PROGRESS_EVERY_SECONDS = 15.0
# The connector's own LOG messages: its warnings and errors stay visible; its INFO chatter ("Marking stream ...
# as STARTED", runtime tables) is DEBUG, so a run's logs show our progress lines instead (PREFECT_LOGGING_LEVEL=DEBUG
# brings it back).
_LOG_LEVELS = {
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
}


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


def run_embedded_sync(
    plan: EmbeddedPlan,
    bronze: LakeStorage,
    logger: Logger,
    compression: str = "snappy",
    part_max_rows: int = 1_000_000,
) -> SyncOutcome:
    """Run one embedded sync of ``plan`` into ``bronze``; raise ConnectorError if the connector fails."""
    source = plan.source
    state = load_state(bronze, source.name)
    sync_id = max(int(datetime.now(UTC).timestamp() * 1000), (state.last_sync_id or 0) + 1)
    started_at = datetime.fromtimestamp(sync_id / 1000, UTC)
    claim_sync(bronze, source.name, sync_id, started_at)  # who runs it, before a part is published
    remove_orphans(bronze, source.name, started_at)  # what an earlier sync of this source left when it died
    connector = plan.connector()
    logger.info("%s: sync %s started (%d streams)", source.name, sync_id, len(plan.streams))
    with bronze.staging_dir() as staging:
        sinks = _open_sinks(plan, bronze, staging, sync_id, started_at, state.generations, compression, part_max_rows)
        try:
            latest_states = _pump(connector, plan, state.connector_state(plan.full_refresh_keys), sinks, logger)
            for sink in sinks.values():
                sink.flush()
                sink.batch.files = sink.writer.close()
        except BaseException:
            if _roll_back(sinks, bronze, logger):
                release_sync(bronze, source.name, sync_id, logger)  # nothing of it is left: nor is its record
            raise
    outcome = SyncOutcome(
        source=source.name,
        connector=source.connector.describe if source.connector else "",
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
    plan: EmbeddedPlan,
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
    plan: EmbeddedPlan,
    connector_state: Any,
    sinks: dict[str, _StreamSink],
    logger: Logger,
) -> dict[str, dict[str, Any]]:
    """Route every line of ``read`` to its stream sink; return the latest STATE per stream/global."""
    latest_states: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    records = 0
    started = time.monotonic()
    next_progress = started + PROGRESS_EVERY_SECONDS
    with connector.read(plan.connector_config, plan.configured_catalog(), connector_state) as process:
        for chunk in process.chunks():
            for line in chunk:
                stream = fast_record_stream(line)
                if stream is None:
                    stream = _handle_message(line, latest_states, errors, logger, plan.source.name, connector.scrub)
                if stream is not None:
                    sink = sinks.get(stream)
                    if sink is None:
                        errors.append(f"connector emitted a record for unselected stream {stream!r}")
                        continue
                    sink.add(line)
                    records += 1
            if (now := time.monotonic()) >= next_progress:
                rate = records / max(now - started, 1e-9)
                logger.info("%s: %d records read so far (%.0f records/s)", plan.source.name, records, rate)
                next_progress = now + PROGRESS_EVERY_SECONDS
        code = process.wait()
        if errors or code != 0:
            detail = errors[-1] if errors else process.stderr_tail()
            raise ConnectorError(f"{plan.source.name}: connector read failed (exit {code}): {connector.scrub(detail)}")
    return latest_states


def _handle_message(
    line: bytes,
    latest_states: dict[str, dict[str, Any]],
    errors: list[str],
    logger: Logger,
    source: str,
    scrub: Callable[[str], str] = str,
) -> str | None:
    """Handle a non-fast-path line; return the stream name when it is a RECORD. Text from the connector is logged
    with the config's secret values masked (``scrub``)."""
    message = parse_message(line)
    if message is None:
        if line.strip():
            logger.debug("%s connector: %s", source, scrub(line[:500].decode(errors="replace").rstrip()))
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
        logger.log(level, "%s connector: %s", source, scrub(str(log.get("message", ""))[:2000]))
    elif kind == "TRACE":
        error = trace_error_message(message)
        if error:
            errors.append(error)
            logger.error("%s connector error: %s", source, scrub(error))
    return None


def _roll_back(sinks: dict[str, _StreamSink], bronze: LakeStorage, logger: Logger) -> bool:
    """Remove every part this failed sync published, so no partial batch stays behind; whether all were removed.

    Never raises: the sync's own error is what the run reports; a part that cannot be removed (the lake is down
    too) is one more log line, and the janitor (``bronze.janitor``) removes it later.
    """
    complete = True
    for sink in sinks.values():
        try:
            sink.writer.abort()
        except Exception as exc:  # the error that failed the sync matters more
            logger.error("%s: cleaning up the staged parts failed too: %s", sink.batch.prefix, exc)
        removed = 0
        for part in sink.writer.published:
            try:
                bronze.delete(part.key)
                removed += 1
            except Exception as exc:
                complete = False
                logger.error("%s: a partial file could not be removed (%s): %s", sink.batch.prefix, part.key, exc)
        if removed:
            logger.warning("removed %d partial file(s) of %s", removed, sink.batch.prefix)
    return complete
