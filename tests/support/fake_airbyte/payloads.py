"""The bodies the fake Airbyte answers with, built from its objects: the Config API's JobInfoRead, JobRead,
AttemptRead, ConnectionRead, WorkspaceRead and discovered streams, and the public API's JobResponse,
ConnectionResponse and WorkspaceResponse.

Shapes follow the airbyte-platform v2.0.0 OpenAPI documents: epoch-second timestamps on the Config API, Java's
``OffsetDateTime`` / ``Duration`` strings on the public API, stats of an attempt only once it ended (``jobs/list``
shows in-progress numbers instead).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from support.fake_airbyte.job_machine import JobMachine, stats
from support.fake_airbyte.state import (
    STREAM_JSON_SCHEMA,
    FakeAttempt,
    FakeConnection,
    FakeJob,
    FakeStream,
    FakeWorkspace,
)

PUBLIC_JOB_TYPES = {"sync": "sync", "reset_connection": "reset", "clear": "clear", "refresh": "refresh"}
AGG_KEYS = ("recordsEmitted", "bytesEmitted", "recordsCommitted", "bytesCommitted", "recordsRejected")


# -- jobs (Config API) -----------------------------------------------------------------------------------------------
def attempt_read(
    machine: JobMachine, job: FakeJob, attempt: FakeAttempt, now: float, *, in_progress: bool
) -> dict[str, Any]:
    """An AttemptRead; ``in_progress``: a running attempt shows its stats so far (as ``jobs/list`` does)."""
    read: dict[str, Any] = {
        "id": attempt.id,
        "status": attempt.status,
        "createdAt": int(attempt.created_at),
        "updatedAt": int(max(attempt.updated_at, attempt.created_at)),
    }
    if attempt.ended_at is not None:
        read["endedAt"] = int(attempt.ended_at)
    stream_stats = attempt.stream_stats if attempt.ended_at is not None else None
    if stream_stats is None and in_progress:
        stream_stats = machine.progress(job, attempt, now)
    if stream_stats is not None:
        total = _sum_stats(stream_stats.values())
        read["bytesSynced"] = total["bytesEmitted"]
        read["recordsSynced"] = total["recordsEmitted"]
        read["totalStats"] = total
        read["streamStats"] = [{"streamName": name, "stats": counts} for name, counts in stream_stats.items()]
    if attempt.failure is not None:
        read["failureSummary"] = {"failures": [attempt.failure], "partialSuccess": False}
    return read


def aggregated(machine: JobMachine, job: FakeJob, now: float) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The job's stats summed over its attempts: the total and one entry per stream."""
    per_stream: dict[str, dict[str, int]] = {}
    for attempt in job.attempts:
        for name, counts in machine.progress(job, attempt, now).items():
            into = per_stream.setdefault(name, dict.fromkeys(AGG_KEYS, 0))
            for key in AGG_KEYS:
                into[key] += counts.get(key, 0)
    total = dict.fromkeys(AGG_KEYS, 0)
    for counts in per_stream.values():
        for key in AGG_KEYS:
            total[key] += counts[key]
    streams = [
        {"streamName": name, **counts, "wasBackfilled": False, "wasResumed": False}
        for name, counts in per_stream.items()
    ]
    return total, streams


def job_read(machine: JobMachine, job: FakeJob, now: float, *, aggregated_stats: bool) -> dict[str, Any]:
    """A JobRead (with aggregatedStats and streamAggregatedStats when ``aggregated_stats``)."""
    read: dict[str, Any] = {
        "id": job.id,
        "configType": job.config_type,
        "configId": job.connection_id,
        "enabledStreams": [{"name": name} for name in job.streams],
        "createdAt": int(job.created_at),
        "updatedAt": int(max(job.updated_at, job.created_at)),
        "status": job.status,
    }
    if job.started_at is not None:
        read["startedAt"] = int(job.started_at)
    if aggregated_stats:
        read["aggregatedStats"], read["streamAggregatedStats"] = aggregated(machine, job, now)
    return read


def job_info(machine: JobMachine, job: FakeJob, now: float, *, logs: bool) -> dict[str, Any]:
    """A JobInfoRead (``jobs/get``, ``connections/sync``): with the attempts' log lines when ``logs``."""
    return {
        "job": job_read(machine, job, now, aggregated_stats=not logs),
        "attempts": [
            {
                "attempt": attempt_read(machine, job, attempt, now, in_progress=False),
                "logType": "formatted",
                "logs": {"logLines": list(attempt.log_lines) if logs else []},
            }
            for attempt in job.attempts
        ],
    }


def public_job(machine: JobMachine, job: FakeJob, now: float) -> dict[str, Any]:
    """The public API's JobResponse."""
    created, updated = int(job.created_at), int(max(job.updated_at, job.created_at))
    total, _ = aggregated(machine, job, now)
    body: dict[str, Any] = {
        "jobId": job.id,
        "status": job.status,
        "jobType": PUBLIC_JOB_TYPES[job.config_type],
        "startTime": _java_iso(created),
        "connectionId": job.connection_id,
        "bytesSynced": total["bytesCommitted"],
        "rowsSynced": total["recordsCommitted"],
    }
    if job.terminal:
        body["lastUpdatedAt"] = _java_iso(updated)
    if job.status != "pending":
        body["duration"] = _java_duration(updated - created)
    return body


# -- connections and workspaces --------------------------------------------------------------------------------------
def connection_read(conn: FakeConnection) -> dict[str, Any]:
    """A ConnectionRead: the stored catalog and settings of an API-created connection, else the defaults."""
    read = default_connection_read(conn)
    if conn.catalog is not None:
        read["syncCatalog"] = {"streams": json.loads(json.dumps(conn.catalog))}
    read["namespaceDefinition"] = conn.namespace_definition
    if conn.namespace_definition == "customformat":
        read["namespaceFormat"] = conn.namespace_format or conn.source_name
    else:
        read.pop("namespaceFormat", None)
    read["prefix"] = conn.prefix
    read["scheduleType"] = conn.schedule_type
    return read


def default_connection_read(conn: FakeConnection) -> dict[str, Any]:
    """A ConnectionRead of a connection added by a test: every stream full refresh / append, keyed by ``id``."""
    return {
        "connectionId": conn.connection_id,
        "name": conn.name,
        "namespaceDefinition": "customformat",
        "namespaceFormat": conn.source_name,
        "prefix": "",
        "sourceId": conn.source_id,
        "destinationId": conn.destination_id,
        "operationIds": [],
        "syncCatalog": {
            "streams": [
                {
                    "stream": {
                        "name": name,
                        "jsonSchema": STREAM_JSON_SCHEMA,
                        "supportedSyncModes": ["full_refresh", "incremental"],
                        "sourceDefinedCursor": False,
                        "defaultCursorField": ["updated_at"],
                        "sourceDefinedPrimaryKey": [["id"]],
                        "isResumable": True,
                    },
                    "config": {
                        "syncMode": "full_refresh",
                        "destinationSyncMode": "append",
                        "cursorField": [],
                        "primaryKey": [["id"]],
                        "aliasName": name,
                        "selected": True,
                        "fieldSelectionEnabled": False,
                    },
                }
                for name in conn.streams
            ]
        },
        "scheduleType": "manual",
        "status": conn.status,
        "breakingChange": False,
        "notifySchemaChanges": False,
        "notifySchemaChangesByEmail": False,
        "nonBreakingChangesPreference": "ignore",
        "created_at": int(conn.created_at),
        "backfillPreference": "disabled",
        "workspaceId": conn.workspace_id,
        "tags": [],
    }


def public_connection(conn: FakeConnection) -> dict[str, Any]:
    """The public API's ConnectionResponse."""
    return {
        "connectionId": conn.connection_id,
        "name": conn.name,
        "sourceId": conn.source_id,
        "destinationId": conn.destination_id,
        "workspaceId": conn.workspace_id,
        "status": conn.status,
        "schedule": {"scheduleType": "manual"},
        "nonBreakingSchemaUpdatesBehavior": "ignore",
        "namespaceDefinition": "custom_format",
        "namespaceFormat": conn.source_name,
        "prefix": "",
        "configurations": {"streams": _public_streams(conn)},
        "createdAt": int(conn.created_at),
        "tags": [],
    }


def _public_streams(conn: FakeConnection) -> list[dict[str, Any]]:
    if conn.catalog is None:
        return [{"name": name, "syncMode": "full_refresh_append", "primaryKey": [["id"]]} for name in conn.streams]
    streams = []
    for item in conn.catalog:
        config = item.get("config") or {}
        if not config.get("selected", True):
            continue
        stream: dict[str, Any] = {
            "name": item["stream"]["name"],
            "syncMode": f"{config['syncMode']}_{config['destinationSyncMode']}",
        }
        if config.get("cursorField"):
            stream["cursorField"] = config["cursorField"]
        if config.get("primaryKey"):
            stream["primaryKey"] = config["primaryKey"]
        streams.append(stream)
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
        "aliasName": stream.name,
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
