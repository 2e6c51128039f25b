"""What an Airbyte job wrote into bronze, as stream batches the checks and the handoff understand.

Airbyte's S3 destination (bucket path ``airbyte/<source_name>``, path format ``${STREAM_NAME}/...``) writes
``airbyte/<source>/<folder>/<YYYY>_<MM>_<DD>_<epoch_ms>_<part>.parquet``, where the folder is the S3-safe form of
the name the destination receives (``identity``), with the epoch of each attempt's start. A job's files are the
keys whose epoch is not older than the job (less a clock-skew margin) and whose rows carry the job id in
``_airbyte_meta.sync_id`` (read from the first row group only; the ``sync_id`` check then reads them all).

What each batch's rows are checked against comes from Airbyte, never from the files (``expected_rows``):

1. the stream's own count: ``recordsCommitted`` summed over the job's attempts (a failed attempt's committed
   records stay in bronze), looked up under the keys Airbyte reports the stream by (``identity.stats_keys``);
2. else the job's total (``aggregatedStats.recordsCommitted``, the attempts' ``totalStats.recordsCommitted`` or
   legacy ``recordsSynced``, the public API's ``rowsSynced``) against the rows of all the job's streams together:
   when they agree each stream is reconciled at the job level, when not every stream fails with both numbers;
3. else no count: the check says so and the stream's ``reconcile`` policy decides.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_FIELDS
from lakehouse_ingest.bronze.batch import Expected, StreamBatch
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.errors import DocumentError
from lakehouse_ingest.lake.documents import Quarantine, read_document
from lakehouse_ingest.lake.keys import (
    attempt_log_folder,
    data_file_epoch,
    is_data_file_of,
    manifest_sync_id,
    source_prefix,
)
from lakehouse_ingest.lake.names import stream_key
from lakehouse_ingest.lake.storage import LakeStorage, StoredObject
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.connections import Connection
from lakehouse_ingest.sources.airbyte.jobs import Job, StreamStats
from lakehouse_ingest.sources.platform.identity import StreamIdentity, check_folders, stream_identity
from lakehouse_ingest.sources.platform.job_ledger import jobs_with_unhanded_files

CLOCK_SKEW_MS = 60_000


def connection_identities(connection: Connection) -> list[StreamIdentity]:
    """The identity of each selected stream of the connection; ConfigError for a name that would escape the
    layout or two streams sharing a bronze folder (checked before any job is triggered)."""
    identities = [
        stream_identity(
            stream.name,
            stream.namespace,
            connection.prefix,
            connection.namespace_definition,
            connection.namespace_format,
        )
        for stream in connection.streams
    ]
    check_folders(identities, f"connection {connection.name!r} ({connection.id})")
    return identities


def job_batches(bronze: LakeStorage, source: str, connection: Connection, job: Job) -> dict[str, StreamBatch]:
    """One batch per selected stream of the connection, named as the destination received it."""
    streams = {(s.name, s.namespace): s for s in connection.streams}
    identities = {identity.destination_name: identity for identity in connection_identities(connection)}
    batches = {}
    for identity in identities.values():
        stream = streams[(identity.name, identity.namespace)]
        prefix = f"{source_prefix(source)}/{identity.folder}"
        files, schema, generation = _job_files(bronze, prefix, job)
        batches[identity.destination_name] = StreamBatch(
            source=source,
            stream=identity.destination_name,
            namespace=identity.namespace,
            sync_id=job.id,
            generation_id=generation,
            started_at=_started_at(files, job),
            prefix=prefix,
            sync_mode=stream.sync_mode,
            destination_sync_mode=stream.destination_sync_mode,
            primary_key=[list(path) for path in stream.primary_key],
            cursor_field=list(stream.cursor_field),
            schema=schema if schema is not None else pa.schema(list(AIRBYTE_FIELDS)),
            records=sum(f.rows for f in files),
            files=files,
        )
    return _with_expected(batches, list(identities.values()), job)


def stream_counts(job: Job, identities: list[StreamIdentity]) -> dict[str, tuple[int, str]]:
    """The committed records of each stream Airbyte reported a count for (by destination name), and the key
    it was found under. A count reported without a namespace is taken only when one stream has that name."""
    stats = job.stream_stats
    claims = Counter(name for identity in identities for name in {identity.name, identity.destination_name})
    found = {}
    for identity in identities:
        for name, namespace in identity.stats_keys():
            if namespace is None and claims[name] > 1:
                continue  # ambiguous: two streams of the connection would claim this count
            hit: StreamStats | None = stats.get(stream_key(name, namespace))
            if hit is not None:
                found[identity.destination_name] = (hit.records_committed, stream_key(name, namespace))
                break
    return found


def _with_expected(
    batches: dict[str, StreamBatch], identities: list[StreamIdentity], job: Job
) -> dict[str, StreamBatch]:
    """Each batch with what its rows are checked against (see the module docstring)."""
    counts = stream_counts(job, identities)
    if counts:
        return {
            name: replace(batch, expected=_stream_expected(counts.get(name), job)) for name, batch in batches.items()
        }
    total = job.committed_total
    if total is None:
        expected = Expected(None, f"Airbyte (job {job.id})")
        return {name: replace(batch, expected=expected) for name, batch in batches.items()}
    committed, where = total
    held = sum(batch.records for batch in batches.values())
    by = f"Airbyte's total for job {job.id} ({where}: {committed}, all {len(batches)} stream(s) together)"
    if held != committed:
        mismatch = (
            f"the files of job {job.id}'s {len(batches)} stream(s) hold {held} rows together (this stream's: "
            f"{{rows}}), Airbyte committed {committed} ({where}); no per-stream count to tell which stream differs"
        )
        return {
            name: replace(batch, expected=Expected(committed, by, mismatch.format(rows=batch.records)))
            for name, batch in batches.items()
        }
    return {name: replace(batch, expected=Expected(batch.records, by)) for name, batch in batches.items()}


def _stream_expected(count: tuple[int, str] | None, job: Job) -> Expected:
    if count is None:  # Airbyte counted other streams of the job but not this one: it committed nothing for it
        return Expected(0, f"Airbyte (no stream stats for this stream in job {job.id}, which reported others)")
    committed, key = count
    attempts = len(job.attempts)
    return Expected(committed, f"Airbyte (recordsCommitted of {key!r}, job {job.id}, {attempts} attempt(s))")


def archive_job_logs(client: AirbyteClient, job: Job, connection: Connection, logs: LakeStorage) -> list[str]:
    """Copy each attempt's log to ``job-<id>/attempt-<n>/logs.log`` with a ``metadata.json`` beside it."""
    written = []
    for number, lines in client.job_logs(job.id):
        folder = attempt_log_folder(job.id, number + 1)
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
    """The job's data files under ``prefix``, the first one's schema and its generation id.

    A file that cannot be read is kept (its sync id is unknown, but it is inside the job's window): validation
    then fails this stream's batch naming the file, and quarantines it, instead of the whole job failing here.
    Once an earlier job's quarantine mark names it, it is that job's: later jobs whose window it is in (the window
    starts a clock-skew margin before the job) are not blocked by it again.
    A zero-row file names no sync id: like any other object that is not the job's, it is ignored.
    """
    oldest = int(job.created_at.timestamp() * 1000) - CLOCK_SKEW_MS
    files: list[PublishedPart] = []
    schema: pa.Schema | None = None
    generation = 0
    listing = bronze.list(prefix)
    claimed: set[str] | None = None
    for obj in listing:
        epoch = data_file_epoch(obj.key)
        if epoch is None or not is_data_file_of(obj.key, prefix) or epoch < oldest:
            continue
        try:
            parquet = bronze.open_parquet(obj.key)
            wanted = [c for c in ("_airbyte_meta", "_airbyte_generation_id") if c in parquet.schema_arrow.names]
            head = parquet.read_row_group(0, columns=wanted) if parquet.num_row_groups else None
        except (OSError, pa.ArrowException):
            if claimed is None:
                claimed = _quarantined_files(bronze, prefix, listing, job.id)
            if obj.key not in claimed:
                files.append(PublishedPart(obj.key, 0, obj.size))  # unreadable: validation names it
            continue
        if head is None or not head.num_rows or _first(head, "_airbyte_meta", "sync_id") != job.id:
            continue  # another job's file inside the clock-skew margin, or an empty file nobody can place
        files.append(PublishedPart(obj.key, parquet.metadata.num_rows, obj.size))
        if schema is None:
            schema = parquet.schema_arrow
            generation = int(_first(head, "_airbyte_generation_id") or 0)
    return files, schema, generation


def _quarantined_files(bronze: LakeStorage, prefix: str, listing: list[StoredObject], job_id: int) -> set[str]:
    """The files the quarantine marks of other syncs in this folder name (a mark that cannot be read names none)."""
    named: set[str] = set()
    for obj in listing:
        sync_id = manifest_sync_id(obj.key) if obj.key.startswith(f"{prefix}/_quarantine/") else None
        if sync_id is None or sync_id == job_id:
            continue
        try:
            mark = read_document(bronze, obj.key, Quarantine)
        except DocumentError:
            continue
        if mark is not None:
            named |= {f.key for f in mark.batch.files}
    return named


def _first(table: pa.Table, column: str, field: str | None = None) -> Any:
    """The first row's value of ``column`` (or of one field of a struct column), None when absent."""
    if column not in table.column_names or not table.num_rows:
        return None
    value = table.column(column)[0].as_py()
    return value.get(field) if field is not None and isinstance(value, dict) else value


def _started_at(files: list[PublishedPart], job: Job) -> datetime:
    epochs = [epoch for f in files if (epoch := data_file_epoch(f.key)) is not None]
    return datetime.fromtimestamp(min(epochs) / 1000, UTC) if epochs else job.created_at


def unhanded_jobs(
    bronze: LakeStorage, source: str, identities: list[StreamIdentity], jobs: list[Job], now: datetime
) -> set[int]:
    """The jobs that left data files in one of this source's stream folders that no manifest or quarantine mark of
    that folder covers (for a connection without a job ledger: its history, searched)."""
    found: set[int] = set()
    for identity in identities:
        prefix = f"{source_prefix(source)}/{identity.folder}"
        epochs, handled = [], set()
        for obj in bronze.list(prefix):
            if is_data_file_of(obj.key, prefix):
                epochs.append(data_file_epoch(obj.key) or 0)
            elif obj.key.startswith((f"{prefix}/_manifests/", f"{prefix}/_quarantine/")) and (
                (sync_id := manifest_sync_id(obj.key)) is not None
            ):
                handled.add(sync_id)
        found |= jobs_with_unhanded_files(jobs, epochs, handled, now)
    return found
