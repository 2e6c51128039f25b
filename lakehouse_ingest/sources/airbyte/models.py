"""Typed records of Airbyte API payloads, parsed on arrival: raw dicts never travel past the client.

Both API families map onto the same records. Only ``succeeded``, ``failed`` and ``cancelled`` are terminal;
``pending``, ``queued`` (servers after v2.0 and Cloud), ``running``, ``incomplete`` and any status this code
does not know yet are "keep waiting" (``JobStatus.UNKNOWN`` keeps the raw value for the logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from lakehouse_ingest.lake.names import stream_key

ActorKind = Literal["source", "destination"]


class JobStatus(StrEnum):
    """Airbyte job statuses (JobStatus / JobStatusEnum), plus UNKNOWN for anything newer."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: object) -> JobStatus:
        """The status for a raw value (case-insensitive); UNKNOWN when it is not one we know."""
        try:
            return cls(str(raw).lower())
        except ValueError:
            return cls.UNKNOWN


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# What jobs/list is asked for when looking for a connection's running job.
NON_TERMINAL_STATUSES = ("pending", "running", "incomplete")


@dataclass(frozen=True)
class StreamStats:
    """What one stream moved in one attempt (or summed over a job's attempts)."""

    stream: str
    namespace: str | None = None
    records_emitted: int = 0
    records_committed: int = 0
    bytes_emitted: int = 0
    bytes_committed: int = 0

    def plus(self, other: StreamStats) -> StreamStats:
        """Both attempts' numbers added (a failed attempt's committed records stay in the destination)."""
        return StreamStats(
            self.stream,
            self.namespace,
            self.records_emitted + other.records_emitted,
            self.records_committed + other.records_committed,
            self.bytes_emitted + other.bytes_emitted,
            self.bytes_committed + other.bytes_committed,
        )


@dataclass(frozen=True)
class Failure:
    """One FailureReason of an attempt's failureSummary."""

    origin: str | None
    type: str | None
    message: str

    def __str__(self) -> str:
        where = "/".join(p for p in (self.origin, self.type) if p)
        return f"[{where}] {self.message}" if where else self.message


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job (``number`` is Airbyte's 0-based attempt id)."""

    number: int
    status: str
    streams: tuple[StreamStats, ...] = ()
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True)
class Job:
    """A sync job as the server last described it."""

    id: int
    connection_id: str
    status: JobStatus
    raw_status: str
    created_at: datetime
    attempts: tuple[Attempt, ...] = ()
    records_committed: int | None = None
    bytes_committed: int | None = None

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self.status in TERMINAL_STATUSES

    @property
    def stream_stats(self) -> dict[str, StreamStats]:
        """Per-stream numbers summed over all attempts (empty when the API gives none)."""
        totals: dict[str, StreamStats] = {}
        for attempt in self.attempts:
            for stats in attempt.streams:
                key = stream_key(stats.stream, stats.namespace)
                totals[key] = totals[key].plus(stats) if key in totals else stats
        return totals

    @property
    def failures(self) -> tuple[Failure, ...]:
        """The last attempt's failure summary."""
        return self.attempts[-1].failures if self.attempts else ()

    @classmethod
    def from_config_api(cls, info: dict[str, Any]) -> Job:
        """From a Config API JobInfoRead or JobWithAttemptsRead (``{"job": ..., "attempts": [...]}``)."""
        job = info["job"]
        attempts = tuple(_attempt(a.get("attempt", a)) for a in info.get("attempts") or [])
        stats = job.get("aggregatedStats") or {}
        return cls(
            id=int(job["id"]),
            connection_id=str(job.get("configId", "")),
            status=JobStatus.parse(job.get("status")),
            raw_status=str(job.get("status")),
            created_at=datetime.fromtimestamp(int(job.get("createdAt") or 0), UTC),
            attempts=attempts,
            records_committed=stats.get("recordsCommitted"),
            bytes_committed=stats.get("bytesCommitted"),
        )

    @classmethod
    def from_public_api(cls, job: dict[str, Any]) -> Job:
        """From a public API JobResponse (totals only: that API has no per-stream stats)."""
        return cls(
            id=int(job["jobId"]),
            connection_id=str(job.get("connectionId", "")),
            status=JobStatus.parse(job.get("status")),
            raw_status=str(job.get("status")),
            created_at=_iso(job.get("startTime")),
            records_committed=job.get("rowsSynced"),
            bytes_committed=job.get("bytesSynced"),
        )


@dataclass(frozen=True)
class ConnectionStream:
    """One selected stream of a connection and how it syncs."""

    name: str
    namespace: str | None = None
    sync_mode: str = "unknown"
    destination_sync_mode: str = "unknown"
    primary_key: tuple[tuple[str, ...], ...] = ()
    cursor_field: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connection:
    """A connection: the unit Airbyte syncs."""

    id: str
    name: str
    status: str
    workspace_id: str | None = None
    streams: tuple[ConnectionStream, ...] = field(default=())

    @classmethod
    def from_config_api(cls, raw: dict[str, Any]) -> Connection:
        """From a Config API ConnectionRead."""
        streams = []
        for item in (raw.get("syncCatalog") or {}).get("streams") or []:
            stream, config = item.get("stream") or {}, item.get("config") or {}
            if not stream.get("name") or config.get("selected") is False:
                continue
            streams.append(
                ConnectionStream(
                    name=str(config.get("aliasName") or stream["name"]),
                    namespace=stream.get("namespace"),
                    sync_mode=str(config.get("syncMode", "unknown")),
                    destination_sync_mode=str(config.get("destinationSyncMode", "unknown")),
                    primary_key=_paths(config.get("primaryKey") or stream.get("sourceDefinedPrimaryKey")),
                    cursor_field=tuple(config.get("cursorField") or ()),
                )
            )
        return cls(
            str(raw["connectionId"]),
            str(raw.get("name", "")),
            str(raw.get("status", "")),
            raw.get("workspaceId"),
            tuple(streams),
        )

    @classmethod
    def from_public_api(cls, raw: dict[str, Any]) -> Connection:
        """From a public API ConnectionResponse (sync mode like ``incremental_append``)."""
        streams = []
        for item in (raw.get("configurations") or {}).get("streams") or []:
            if not item.get("name"):
                continue
            mode = str(item.get("syncMode", "unknown"))
            source_mode, _, destination_mode = mode.partition("_")
            if source_mode == "full":  # full_refresh_overwrite / full_refresh_append
                source_mode, destination_mode = "full_refresh", mode.removeprefix("full_refresh_")
            streams.append(
                ConnectionStream(
                    name=str(item["name"]),
                    namespace=item.get("namespace"),
                    sync_mode=source_mode,
                    destination_sync_mode=destination_mode or "unknown",
                    primary_key=_paths(item.get("primaryKey")),
                    cursor_field=tuple(item.get("cursorField") or ()),
                )
            )
        return cls(
            str(raw["connectionId"]),
            str(raw.get("name", "")),
            str(raw.get("status", "")),
            raw.get("workspaceId"),
            tuple(streams),
        )


def _paths(raw: object) -> tuple[tuple[str, ...], ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(tuple(str(p) for p in path) for path in raw if isinstance(path, list))


def _attempt(raw: dict[str, Any]) -> Attempt:
    streams = tuple(
        StreamStats(
            stream=str(s.get("streamName")),
            namespace=s.get("streamNamespace"),
            records_emitted=int((s.get("stats") or {}).get("recordsEmitted") or 0),
            records_committed=int((s.get("stats") or {}).get("recordsCommitted") or 0),
            bytes_emitted=int((s.get("stats") or {}).get("bytesEmitted") or 0),
            bytes_committed=int((s.get("stats") or {}).get("bytesCommitted") or 0),
        )
        for s in raw.get("streamStats") or []
    )
    failures = tuple(
        Failure(
            f.get("failureOrigin"),
            f.get("failureType"),
            str(f.get("externalMessage") or f.get("internalMessage") or ""),
        )
        for f in (raw.get("failureSummary") or {}).get("failures") or []
    )
    return Attempt(int(raw.get("id") or 0), str(raw.get("status", "")), streams, failures)


def _iso(value: object) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.fromtimestamp(0, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- configuration objects (provisioning) --------------------------------------------------------------------------
# What Airbyte returns in place of a secret (``airbyte_secret`` fields) when it reads a configuration back.
SECRET_MASK = "**********"  # noqa: S105 - the mask, not a secret


@dataclass(frozen=True)
class Workspace:
    """A workspace: where sources, destinations and connections live."""

    id: str
    name: str


@dataclass(frozen=True)
class ActorDefinition:
    """A source or destination definition (the connector image a source or destination runs)."""

    id: str
    name: str
    docker_repository: str
    docker_image_tag: str

    @classmethod
    def from_destination_read(cls, raw: dict[str, Any]) -> ActorDefinition:
        """From a Config API DestinationDefinitionRead."""
        return cls(
            str(raw["destinationDefinitionId"]),
            str(raw.get("name", "")),
            str(raw.get("dockerRepository", "")),
            str(raw.get("dockerImageTag", "")),
        )


@dataclass(frozen=True)
class Actor:
    """A configured source or destination; ``configuration`` is as the server reads it back (secrets masked)."""

    id: str
    name: str
    definition_id: str
    workspace_id: str
    configuration: dict[str, Any]

    @classmethod
    def from_read(cls, kind: ActorKind, raw: dict[str, Any]) -> Actor:
        """From a Config API SourceRead or DestinationRead (``kind``: ``source`` or ``destination``)."""
        return cls(
            str(raw[f"{kind}Id"]),
            str(raw.get("name", "")),
            str(raw.get(f"{kind}DefinitionId", "")),
            str(raw.get("workspaceId", "")),
            dict(raw.get("connectionConfiguration") or {}),
        )


@dataclass(frozen=True)
class DiscoveredStream:
    """One stream of a source's discovered catalog: what it supports, and its defaults.

    ``schema`` (the AirbyteStream part) and ``default_config`` are kept as the server sent them, opaque,
    because a connection's catalog must send them back whole.
    """

    name: str
    namespace: str | None
    supported_sync_modes: tuple[str, ...]
    source_defined_cursor: bool
    default_cursor_field: tuple[str, ...]
    source_defined_primary_key: tuple[tuple[str, ...], ...]
    schema: dict[str, Any]
    default_config: dict[str, Any]


@dataclass(frozen=True)
class DiscoveredCatalog:
    """The result of discovering a source's schema (``catalog_id`` when the server stored it)."""

    streams: tuple[DiscoveredStream, ...]
    catalog_id: str | None = None

    @classmethod
    def from_config_api(cls, raw: dict[str, Any]) -> DiscoveredCatalog:
        """From a SourceDiscoverSchemaRead whose job succeeded."""
        streams = []
        for item in (raw.get("catalog") or {}).get("streams") or []:
            stream = item.get("stream") or {}
            if not stream.get("name"):
                continue
            streams.append(
                DiscoveredStream(
                    name=str(stream["name"]),
                    namespace=stream.get("namespace"),
                    supported_sync_modes=tuple(str(m) for m in stream.get("supportedSyncModes") or ()),
                    source_defined_cursor=bool(stream.get("sourceDefinedCursor")),
                    default_cursor_field=tuple(str(p) for p in stream.get("defaultCursorField") or ()),
                    source_defined_primary_key=_paths(stream.get("sourceDefinedPrimaryKey")),
                    schema=dict(stream),
                    default_config=dict(item.get("config") or {}),
                )
            )
        return cls(tuple(streams), raw.get("catalogId"))

    def stream(self, name: str) -> DiscoveredStream | None:
        """The stream called ``name`` (None when the source does not have it)."""
        return next((s for s in self.streams if s.name == name), None)


@dataclass(frozen=True)
class StreamSyncConfig:
    """How a connection syncs one selected stream (the parts provisioning manages)."""

    sync_mode: str
    destination_sync_mode: str
    cursor_field: tuple[str, ...] = ()
    primary_key: tuple[tuple[str, ...], ...] = ()
    alias: str = ""  # an alias renames the stream's folder; "" when there is none


@dataclass(frozen=True)
class ConnectionConfig:
    """A connection's configuration as provisioning compares it (a Config API ConnectionRead)."""

    id: str
    name: str
    workspace_id: str | None
    source_id: str
    destination_id: str
    status: str
    namespace_definition: str | None
    namespace_format: str | None
    prefix: str
    schedule_type: str | None
    streams: dict[str, StreamSyncConfig]  # selected streams by name

    @classmethod
    def from_config_api(cls, raw: dict[str, Any]) -> ConnectionConfig:
        """From a Config API ConnectionRead (only selected streams are kept; an alias keeps the stream name)."""
        streams = {}
        for item in (raw.get("syncCatalog") or {}).get("streams") or []:
            stream, config = item.get("stream") or {}, item.get("config") or {}
            if not stream.get("name") or config.get("selected") is False:
                continue
            sync_mode = str(config.get("syncMode", ""))
            streams[str(stream["name"])] = StreamSyncConfig(
                sync_mode=sync_mode,
                destination_sync_mode=str(config.get("destinationSyncMode", "")),
                cursor_field=tuple(config.get("cursorField") or ()) if sync_mode == "incremental" else (),
                primary_key=_paths(config.get("primaryKey")),
                alias="" if config.get("aliasName") in (None, "", stream["name"]) else str(config["aliasName"]),
            )
        return cls(
            id=str(raw["connectionId"]),
            name=str(raw.get("name", "")),
            workspace_id=raw.get("workspaceId"),
            source_id=str(raw.get("sourceId", "")),
            destination_id=str(raw.get("destinationId", "")),
            status=str(raw.get("status", "")),
            namespace_definition=raw.get("namespaceDefinition"),
            namespace_format=raw.get("namespaceFormat"),
            prefix=str(raw.get("prefix") or ""),
            schedule_type=raw.get("scheduleType"),
            streams=streams,
        )
