"""Typed records provisioning reads and writes on the Config API: workspaces' definitions, sources and
destinations (actors), discovered catalogs and connection configurations.

Kept apart from the job and connection records the sync path parses (``jobs``, ``connections``): these carry
whole configurations and catalogs, opaque where the server needs them sent back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lakehouse_ingest.sources.airbyte.connections import field_paths

ActorKind = Literal["source", "destination"]
# What Airbyte returns in place of a secret (``airbyte_secret`` fields) when it reads a configuration back.
SECRET_MASK = "**********"  # noqa: S105 - the mask, not a secret


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
                    source_defined_primary_key=field_paths(stream.get("sourceDefinedPrimaryKey")),
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
        """From a Config API ConnectionRead (only selected streams are kept, by their source name; ``aliasName``
        is the platform's own rewrite of the name, never compared: see ``connections``)."""
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
                primary_key=field_paths(config.get("primaryKey")),
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
