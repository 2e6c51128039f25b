"""What an Airbyte job wrote into bronze, as stream batches the checks and the handoff understand.

Airbyte's S3 destination (bucket path ``airbyte/<source_name>``, path format ``${STREAM_NAME}/...``) writes
``airbyte/<source>/<stream>/<YYYY>_<MM>_<DD>_<epoch_ms>_<part>.parquet``, with the epoch of each attempt's
start. A job's files are the keys whose epoch is not older than the job (less a clock-skew margin) and
whose rows carry the job id in ``_airbyte_meta.sync_id`` (read from the first row group only; the
``sync_id`` check then reads them all). The expected row count per stream is Airbyte's
``recordsCommitted`` summed over the job's attempts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_FIELDS
from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.lake.keys import DATA_FILE, stream_prefix
from lakehouse_ingest.lake.names import stream_key
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.connections import Connection, ConnectionStream
from lakehouse_ingest.sources.airbyte.jobs import Job

CLOCK_SKEW_MS = 60_000


def job_batches(bronze: LakeStorage, source: str, connection: Connection, job: Job) -> dict[str, StreamBatch]:
    """One batch per stream of the connection (and any stream the job reported stats for)."""
    stats = job.stream_stats
    streams = list(connection.streams) + [
        ConnectionStream(name=s.stream, namespace=s.namespace)
        for s in stats.values()
        if s.stream not in {c.name for c in connection.streams}
    ]
    batches = {}
    for stream in streams:
        files, schema, generation = _job_files(bronze, stream_prefix(source, stream.name), job)
        key = stream_key(stream.name, stream.namespace)
        committed = stats[key].records_committed if key in stats else None
        batches[stream.name] = StreamBatch(
            source=source,
            stream=stream.name,
            namespace=stream.namespace,
            sync_id=job.id,
            generation_id=generation,
            started_at=_started_at(files, job),
            prefix=stream_prefix(source, stream.name),
            sync_mode=stream.sync_mode,
            destination_sync_mode=stream.destination_sync_mode,
            primary_key=[list(path) for path in stream.primary_key],
            cursor_field=list(stream.cursor_field),
            schema=schema if schema is not None else pa.schema(list(AIRBYTE_FIELDS)),
            records=committed if committed is not None else sum(f.rows for f in files),
            files=files,
        )
    return batches


def totals_mismatch(batches: dict[str, StreamBatch], job: Job) -> str | None:
    """Without per-stream stats (public API), the rows of all streams must add up to the job's total."""
    if job.stream_stats or job.records_committed is None:
        return None
    rows = sum(sum(f.rows for f in b.files) for b in batches.values())
    if rows != job.records_committed:
        return f"bronze holds {rows} rows of job {job.id}, Airbyte committed {job.records_committed}"
    return None


def archive_job_logs(client: AirbyteClient, job: Job, connection: Connection, logs: LakeStorage) -> list[str]:
    """Copy each attempt's log to ``job-<id>/attempt-<n>/logs.log`` with a ``metadata.json`` beside it."""
    written = []
    for number, lines in client.job_logs(job.id):
        folder = f"job-{job.id}/attempt-{number + 1}"
        logs.put_bytes(f"{folder}/logs.log", ("\n".join(lines) + "\n").encode())
        metadata = {
            "job_id": job.id,
            "attempt": number + 1,
            "connection_id": connection.id,
            "connection_name": connection.name,
            "status": job.raw_status,
            "created_at": job.created_at.isoformat(),
            "archived_at": datetime.now(UTC).isoformat(),
            "lines": len(lines),
        }
        logs.put_bytes(f"{folder}/metadata.json", json.dumps(metadata, indent=2).encode())
        written.append(logs.url_for(f"{folder}/logs.log"))
    return written


def _job_files(bronze: LakeStorage, prefix: str, job: Job) -> tuple[list[PublishedPart], pa.Schema | None, int]:
    """The job's data files under ``prefix``, the first one's schema and its generation id."""
    oldest = int(job.created_at.timestamp() * 1000) - CLOCK_SKEW_MS
    depth = prefix.count("/") + 1
    files: list[PublishedPart] = []
    schema: pa.Schema | None = None
    generation = 0
    for obj in bronze.list(prefix):
        match = DATA_FILE.fullmatch(obj.key.rsplit("/", 1)[-1])
        if not match or obj.key.count("/") != depth or int(match.group("epoch")) < oldest:
            continue
        parquet = bronze.open_parquet(obj.key)
        wanted = [c for c in ("_airbyte_meta", "_airbyte_generation_id") if c in parquet.schema_arrow.names]
        head = parquet.read_row_group(0, columns=wanted) if parquet.num_row_groups else None
        if head is not None and head.num_rows and _first(head, "_airbyte_meta", "sync_id") != job.id:
            continue  # another job's file inside the clock-skew margin
        files.append(PublishedPart(obj.key, parquet.metadata.num_rows, obj.size))
        if schema is None:
            schema = parquet.schema_arrow
            generation = int(_first(head, "_airbyte_generation_id") or 0) if head is not None else 0
    return files, schema, generation


def _first(table: pa.Table, column: str, field: str | None = None) -> Any:
    """The first row's value of ``column`` (or of one field of a struct column), None when absent."""
    if column not in table.column_names or not table.num_rows:
        return None
    value = table.column(column)[0].as_py()
    return value.get(field) if field is not None and isinstance(value, dict) else value


def _started_at(files: list[PublishedPart], job: Job) -> datetime:
    epochs = [int(m.group("epoch")) for f in files if (m := DATA_FILE.fullmatch(f.key.rsplit("/", 1)[-1]))]
    return datetime.fromtimestamp(min(epochs) / 1000, UTC) if epochs else job.created_at
