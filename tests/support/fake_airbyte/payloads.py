"""The bodies the fake Airbyte answers with, built from its objects: the Config API's JobInfoRead, JobRead,
AttemptRead, ConnectionRead, WorkspaceRead and discovered streams, and the public API's JobResponse,
ConnectionResponse and WorkspaceResponse.

Shapes follow the airbyte-platform v2.0.0 OpenAPI documents and what the platform's converters put in them
(research ``/tmp/research/airbyte-identity.md``, rule 4; examples in ``tests/airbyte-payloads``):

- ``jobs/get``, ``connections/sync``, ``jobs/cancel`` (``JobConverter.getJobInfoRead``): no job-level aggregates;
  attempts ``{attempt, logType, logs}`` whose stats come from the attempt's output, so only once it ended:
  ``recordsSynced``/``bytesSynced`` (committed, the v1.4+ meaning), ``totalStats`` and ``streamStats`` with
  ``{bytesEmitted, recordsEmitted, stateMessagesEmitted, recordsCommitted}`` and **no** ``streamNamespace``
  (``getAttemptStreamStats``).
- ``jobs/get_without_logs`` (``JobHistoryHandler.getJobInfoWithoutLogsStatic``): the same attempts as ``{attempt}``
  only, plus the job's ``aggregatedStats`` and ``streamAggregatedStats`` from the stats table (in-progress, **with**
  ``streamNamespace``; a full-refresh stream counts its last attempt, an incremental one the sum:
  ``StatsAggregationHelper.getAggregatedStats``).
- ``jobs/list`` (``listJobsFor`` → ``hydrateWithStats``): bare AttemptReads whose ``totalStats``/``streamStats`` are
  the stats table's (in-progress, with ``streamNamespace``; ``totalStats: {}`` when it has none), and the
  aggregates.
- The public JobResponse: ``rowsSynced``/``bytesSynced`` = the aggregates' committed numbers (absent without).

Per-stream stats carry the source's stream name and namespace (no prefix): since v0.50.24 the platform counts the
source's message before mapping it (``ReplicationWorkerHelper.kt``). ``stats_shape`` picks another server
generation (:data:`support.fake_airbyte.state.StatsShape`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from support.fake_airbyte.catalog import descriptor, read_streams, stored_streams
from support.fake_airbyte.job_machine import JobMachine, stats
from support.fake_airbyte.naming import alias_name
from support.fake_airbyte.state import (
    STREAM_JSON_SCHEMA,
    FakeAttempt,
    FakeConnection,
    FakeJob,
    FakeStream,
    FakeWorkspace,
    StatsShape,
)

PUBLIC_JOB_TYPES = {"sync": "sync", "reset_connection": "reset", "clear": "clear", "refresh": "refresh"}
AGG_KEYS = ("recordsEmitted", "bytesEmitted", "recordsCommitted", "bytesCommitted", "recordsRejected")
# JobConverter.getAttemptStats / getTotalAttemptStats: what an attempt's output reports.
OUTPUT_KEYS = ("recordsEmitted", "bytesEmitted", "stateMessagesEmitted", "recordsCommitted")
# StatsAggregationHelper.hydrateWithStats(AttemptRead, ...): what the stats table gives jobs/list.
TABLE_KEYS = ("recordsEmitted", "bytesEmitted", "recordsCommitted")
# Config API definition spelling -> public API spelling (ConnectionReadMapper.convertNamespaceDefinitionType).
PUBLIC_NAMESPACE_DEFINITIONS = {"source": "source", "destination": "destination", "customformat": "custom_format"}
# (syncMode, destinationSyncMode) -> the public API's ConnectionSyncModeEnum (api.yaml).
PUBLIC_SYNC_MODES = {
    ("full_refresh", "overwrite"): "full_refresh_overwrite",
    ("full_refresh", "overwrite_dedup"): "full_refresh_overwrite_deduped",
    ("full_refresh", "append"): "full_refresh_append",
    ("full_refresh", "update"): "full_refresh_update",
    ("full_refresh", "soft_delete"): "full_refresh_soft_delete",
    ("incremental", "append"): "incremental_append",
    ("incremental", "append_dedup"): "incremental_deduped_history",
    ("incremental", "update"): "incremental_update",
    ("incremental", "soft_delete"): "incremental_soft_delete",
}


# -- jobs (Config API) -----------------------------------------------------------------------------------------------
def stats_shape(machine: JobMachine, job: FakeJob) -> StatsShape:
    """The server generation the job's counts are reported as: the connection's, else the fake's."""
    conn = machine.state.connections.get(job.connection_id)
    if conn is not None and conn.stats_shape is not None:
        return conn.stats_shape
    return machine.options.stats_shape


def _reported_as(job: FakeJob, name: str, shape: StatsShape) -> tuple[str, str | None]:
    """The (stream name, namespace) the stats of a stream are reported under."""
    names = job.names.get(name)
    if names is None:  # a stream a writer reported that the catalog does not list
        return name, None
    if shape == "prefixed":  # servers <= v0.50.21 counted the mapped message (v0.50.0 ReplicationWorkerHelper.java)
        return names.destination_name, names.destination_namespace
    return names.name, names.namespace


def attempt_read(
    machine: JobMachine, job: FakeJob, attempt: FakeAttempt, now: float, *, in_progress: bool
) -> dict[str, Any]:
    """An AttemptRead; ``in_progress``: as ``jobs/list`` shows it (the stats table's numbers, running ones too)."""
    shape = stats_shape(machine, job)
    read: dict[str, Any] = {
        "id": attempt.id,
        "status": attempt.status,
        "createdAt": int(attempt.created_at),
        "updatedAt": int(max(attempt.updated_at, attempt.created_at)),
    }
    ended = attempt.ended_at is not None
    if ended:
        read["endedAt"] = int(attempt.ended_at or 0)
    output = ended and attempt.has_output and shape != "none"
    if output:  # the attempt output's standardSyncSummary
        total = _sum_stats(attempt.stream_stats.values())
        if shape == "prefixed":  # v0.50.0: recordsSynced = getTotalRecordsEmitted()
            read["recordsSynced"], read["bytesSynced"] = total["recordsEmitted"], total["bytesEmitted"]
        else:  # v1.4+: recordsSynced = totalStats.recordsCommitted
            read["recordsSynced"], read["bytesSynced"] = total["recordsCommitted"], total["bytesCommitted"]
    if in_progress:
        table = machine.progress(job, attempt, now) if shape in ("current", "prefixed") else {}
        running = attempt.status == "running"
        read["totalStats"] = _project(_sum_stats(table.values()), TABLE_KEYS, running) if table else {}
        if table:
            read["streamStats"] = [
                _stream_stats(job, name, shape, _project(counts, TABLE_KEYS, running), with_namespace=True)
                for name, counts in table.items()
            ]
    elif output:
        read["totalStats"] = _project(_sum_stats(attempt.stream_stats.values()), OUTPUT_KEYS)
        if shape in ("current", "prefixed") and attempt.stream_stats:
            read["streamStats"] = [
                _stream_stats(job, name, shape, _project(counts, OUTPUT_KEYS), with_namespace=False)
                for name, counts in attempt.stream_stats.items()
            ]
    if attempt.failure is not None:  # partialSuccess: the attempt committed records before it failed
        committed = sum(counts.get("recordsCommitted", 0) for counts in attempt.stream_stats.values())
        read["failureSummary"] = {"failures": [attempt.failure], "partialSuccess": committed > 0}
    return read


def _stream_stats(
    job: FakeJob, name: str, shape: StatsShape, counts: dict[str, int], *, with_namespace: bool
) -> dict[str, Any]:
    stream, namespace = _reported_as(job, name, shape)
    entry: dict[str, Any] = {"streamName": stream}
    if with_namespace and namespace is not None:
        entry["streamNamespace"] = namespace
    entry["stats"] = counts
    return entry


def _project(counts: dict[str, int], keys: tuple[str, ...], running: bool = False) -> dict[str, int]:
    """The stats an endpoint shows (``running``: with the stats table's estimates)."""
    shown = {key: int(counts.get(key, 0)) for key in keys}
    if running:
        shown["estimatedRecords"] = int(counts.get("estimatedRecords", 0))
        shown["estimatedBytes"] = int(counts.get("estimatedBytes", 0))
    return shown


def aggregated(machine: JobMachine, job: FakeJob, now: float) -> tuple[dict[str, int], list[dict[str, Any]]] | None:
    """The job's aggregatedStats and streamAggregatedStats, or None for a server generation without them.

    Only the streams of the job's configured catalog are listed; a full-refresh stream counts its last attempt,
    an incremental one the sum of its attempts (``StatsAggregationHelper.getAggregatedStats``).
    """
    shape = stats_shape(machine, job)
    if shape == "prefixed":  # aggregates came with v0.50.45-ish; servers that prefixed stats had none
        return None
    per_stream: dict[str, dict[str, int]] = {}
    if shape == "current":
        for name in job.streams:
            progress = [machine.progress(job, attempt, now) for attempt in job.attempts]
            seen = [by_stream[name] for by_stream in progress if name in by_stream]
            names = job.names.get(name)
            if names is not None and names.sync_mode == "full_refresh":
                seen = seen[-1:]
            if seen:
                per_stream[name] = {key: sum(c.get(key, 0) for c in seen) for key in AGG_KEYS}
    total = {key: sum(c[key] for c in per_stream.values()) for key in AGG_KEYS}
    streams = []
    for name, summed in per_stream.items():
        stream, namespace = _reported_as(job, name, shape)
        entry: dict[str, Any] = {"streamName": stream}
        if namespace is not None:
            entry["streamNamespace"] = namespace
        entry.update(summed)
        if job.terminal:
            entry.update(wasBackfilled=False, wasResumed=False)
        streams.append(entry)
    return total, streams


def job_read(machine: JobMachine, job: FakeJob, now: float, *, aggregated_stats: bool) -> dict[str, Any]:
    """A JobRead (with aggregatedStats and streamAggregatedStats when ``aggregated_stats``)."""
    read: dict[str, Any] = {
        "id": job.id,
        "configType": job.config_type,
        "configId": job.connection_id,
        "enabledStreams": [_descriptor(job, name) for name in job.streams],
    }
    if job.config_type == "reset_connection":  # JobConverter.extractResetConfigIfReset
        read["resetConfig"] = {"streamsToReset": [_descriptor(job, name) for name in job.streams]}
    elif job.config_type == "refresh":  # JobConverter.extractRefreshConfigIfNeeded
        read["refreshConfig"] = {"streamsToRefresh": [_descriptor(job, name) for name in job.streams]}
    read.update(createdAt=int(job.created_at), updatedAt=int(max(job.updated_at, job.created_at)), status=job.status)
    if job.started_at is not None:
        read["startedAt"] = int(job.started_at)
    if aggregated_stats:
        stats = aggregated(machine, job, now)
        if stats is not None:
            read["aggregatedStats"], read["streamAggregatedStats"] = stats
    return read


def _descriptor(job: FakeJob, name: str) -> dict[str, str]:
    names = job.names.get(name)
    return descriptor(name, names.namespace if names is not None else None)


def job_info(machine: JobMachine, job: FakeJob, now: float, *, logs: bool) -> dict[str, Any]:
    """A JobInfoRead: ``logs`` as ``jobs/get`` (attempts with their log lines), else as ``jobs/get_without_logs``
    (job aggregates; attempts ``{attempt}`` only: ``JobConverter.getAttemptInfoWithoutLogsRead``)."""
    attempts: list[dict[str, Any]] = []
    for attempt in job.attempts:
        item: dict[str, Any] = {"attempt": attempt_read(machine, job, attempt, now, in_progress=False)}
        if logs:
            item.update(logType="formatted", logs={"logLines": list(attempt.log_lines)})
        attempts.append(item)
    return {"job": job_read(machine, job, now, aggregated_stats=not logs), "attempts": attempts}


def public_job(machine: JobMachine, job: FakeJob, now: float) -> dict[str, Any]:
    """The public API's JobResponse (``JobResponseMapper``)."""
    created, updated = int(job.created_at), int(max(job.updated_at, job.created_at))
    body: dict[str, Any] = {
        "jobId": job.id,
        "status": job.status,
        "jobType": PUBLIC_JOB_TYPES[job.config_type],
        "startTime": _java_iso(created),
        "connectionId": job.connection_id,
    }
    if job.terminal:
        body["lastUpdatedAt"] = _java_iso(updated)
    if job.status != "pending":
        body["duration"] = _java_duration(updated - created)
    stats = aggregated(machine, job, now)
    if stats is not None:
        body["bytesSynced"], body["rowsSynced"] = stats[0]["bytesCommitted"], stats[0]["recordsCommitted"]
    return body


# -- connections and workspaces --------------------------------------------------------------------------------------
def connection_read(conn: FakeConnection) -> dict[str, Any]:
    """A ConnectionRead (``ApiPojoConverters.internalToConnectionRead``): settings as stored, the catalog as
    ``CatalogConverter.toApi`` reads it back (selected streams, aliasName recomputed)."""
    read: dict[str, Any] = {
        "connectionId": conn.connection_id,
        "name": conn.name,
        "namespaceDefinition": conn.namespace_definition,
    }
    if conn.namespace_format is not None:
        read["namespaceFormat"] = conn.namespace_format
    read.update(
        {
            "prefix": conn.prefix,
            "sourceId": conn.source_id,
            "destinationId": conn.destination_id,
            "operationIds": [],
            "syncCatalog": {"streams": read_streams(conn)},
            "scheduleType": conn.schedule_type,
            "status": conn.status,
            "sourceCatalogId": conn.source_catalog_id,
            "breakingChange": False,
            "notifySchemaChanges": False,
            "notifySchemaChangesByEmail": False,
            "nonBreakingChangesPreference": "ignore",
            "created_at": int(conn.created_at),
            "backfillPreference": "disabled",
            # Not set by internalToConnectionRead at HEAD; older servers and connections/list answers carry it.
            "workspaceId": conn.workspace_id,
            "tags": [],
        }
    )
    return read


def public_connection(conn: FakeConnection) -> dict[str, Any]:
    """The public API's ConnectionResponse (``ConnectionReadMapper``)."""
    body: dict[str, Any] = {
        "connectionId": conn.connection_id,
        "name": conn.name,
        "sourceId": conn.source_id,
        "destinationId": conn.destination_id,
        "workspaceId": conn.workspace_id,
        "status": conn.status,
        "schedule": {"scheduleType": conn.schedule_type},
        "nonBreakingSchemaUpdatesBehavior": "ignore",
        "namespaceDefinition": PUBLIC_NAMESPACE_DEFINITIONS.get(conn.namespace_definition, conn.namespace_definition),
    }
    if conn.namespace_format is not None:
        body["namespaceFormat"] = conn.namespace_format
    body.update(
        prefix=conn.prefix,
        configurations={"streams": _public_streams(conn)},
        createdAt=int(conn.created_at),
        tags=[],
    )
    return body


def _public_streams(conn: FakeConnection) -> list[dict[str, Any]]:
    streams = []
    for item in stored_streams(conn):
        stream, config = item["stream"], item.get("config") or {}
        modes = (str(config.get("syncMode")), str(config.get("destinationSyncMode")))
        entry: dict[str, Any] = {"name": stream["name"]}
        if stream.get("namespace") is not None:
            entry["namespace"] = stream["namespace"]
        entry.update(
            syncMode=PUBLIC_SYNC_MODES.get(modes, "_".join(modes)),
            cursorField=list(config.get("cursorField") or []),
            primaryKey=json.loads(json.dumps(config.get("primaryKey") or [])),
            mappers=[],
        )
        streams.append(entry)
    return streams


def workspace_read(ws: FakeWorkspace) -> dict[str, Any]:
    """The Config API's WorkspaceRead."""
    return {
        "workspaceId": ws.workspace_id,
        "customerId": ws.customer_id,
        "name": ws.name,
        "slug": ws.name.lower().replace(" ", "-"),
        "initialSetupComplete": True,
        "displaySetupWizard": False,
        "anonymousDataCollection": False,
        "news": False,
        "securityUpdates": False,
        "notifications": [],
        "organizationId": ws.organization_id,
        "tombstone": ws.tombstone,
    }


def public_workspace(ws: FakeWorkspace) -> dict[str, Any]:
    """The public API's WorkspaceResponse."""
    return {"workspaceId": ws.workspace_id, "name": ws.name, "dataResidency": "auto", "notifications": {}}


def discovered(stream: FakeStream) -> dict[str, Any]:
    """An AirbyteStreamAndConfiguration as discover returns it (config: the defaults)."""
    schema: dict[str, Any] = {
        "name": stream.name,
        "jsonSchema": STREAM_JSON_SCHEMA,
        "supportedSyncModes": list(stream.supported_sync_modes),
        "sourceDefinedCursor": stream.source_defined_cursor,
        "defaultCursorField": list(stream.default_cursor_field),
        "sourceDefinedPrimaryKey": [list(p) for p in stream.source_defined_primary_key],
        "isResumable": True,
    }
    if stream.namespace is not None:
        schema["namespace"] = stream.namespace
    incremental = "incremental" in stream.supported_sync_modes and bool(
        stream.source_defined_cursor or stream.default_cursor_field
    )
    config = {
        "syncMode": "incremental" if incremental else stream.supported_sync_modes[0],
        "destinationSyncMode": "append",
        "cursorField": list(stream.default_cursor_field),
        "primaryKey": [list(p) for p in stream.source_defined_primary_key],
        "aliasName": alias_name(stream.name),  # CatalogConverter.generateDefaultConfiguration
        "selected": True,
        "suggested": True,
    }
    return {"stream": schema, "config": config}


# -- value formats ---------------------------------------------------------------------------------------------------
def _sum_stats(items: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in items:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total or stats(0)


def _java_iso(epoch_seconds: int) -> str:
    """OffsetDateTime.toString() in UTC: seconds are left out when they are zero (``2025-01-15T00:00Z``)."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M")
    if moment.second:
        text += f":{moment.second:02d}"
    return text + "Z"


def _java_duration(seconds: int) -> str:
    """java.time.Duration.toString() for whole seconds (``PT8H6M12S``, ``PT0S``)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or text == "PT":
        text += f"{secs}S"
    return text
