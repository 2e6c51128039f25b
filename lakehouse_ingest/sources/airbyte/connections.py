"""Airbyte connections and workspaces as typed records, parsed on arrival from either API family.

A ``Connection`` is the unit Airbyte syncs: its selected streams with how each syncs, and the settings that
decide what the destination receives (``prefix``, ``namespaceDefinition``, ``namespaceFormat``; see
``sources.platform.identity``). A stream's name is the source's ``stream.name``: ``config.aliasName`` is never
a name (the platform recomputes it as ``toAlphanumericAndUnderscore(name)`` on every read and uses it for
nothing: airbyte-platform ``airbyte-commons-server/.../handlers/helpers/CatalogConverter.kt``). The
provisioning view of a connection, with everything it compares, is ``provisioning_models.ConnectionConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    prefix: str = ""
    namespace_definition: str | None = None  # source | destination | customformat (public API: custom_format)
    namespace_format: str | None = None

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
                    name=str(stream["name"]),
                    namespace=stream.get("namespace"),
                    sync_mode=str(config.get("syncMode", "unknown")),
                    destination_sync_mode=str(config.get("destinationSyncMode", "unknown")),
                    primary_key=field_paths(config.get("primaryKey") or stream.get("sourceDefinedPrimaryKey")),
                    cursor_field=tuple(config.get("cursorField") or ()),
                )
            )
        return cls._with_streams(raw, streams)

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
                    primary_key=field_paths(item.get("primaryKey")),
                    cursor_field=tuple(item.get("cursorField") or ()),
                )
            )
        return cls._with_streams(raw, streams)

    @classmethod
    def _with_streams(cls, raw: dict[str, Any], streams: list[ConnectionStream]) -> Connection:
        """The fields both API families name alike, with the streams parsed from either."""
        return cls(
            str(raw["connectionId"]),
            str(raw.get("name") or ""),
            str(raw.get("status") or ""),
            raw.get("workspaceId"),
            tuple(streams),
            str(raw.get("prefix") or ""),
            raw.get("namespaceDefinition"),
            raw.get("namespaceFormat"),
        )


@dataclass(frozen=True)
class Workspace:
    """A workspace: where sources, destinations and connections live."""

    id: str
    name: str

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Workspace:
        """From a WorkspaceRead (Config API) or WorkspaceResponse (public API): both say ``workspaceId``."""
        return cls(str(raw["workspaceId"]), str(raw.get("name", "")))


def field_paths(raw: object) -> tuple[tuple[str, ...], ...]:
    """Field paths (``[["id"], ["a", "b"]]``) as tuples; () for anything that is not a list of lists."""
    if not isinstance(raw, list):
        return ()
    return tuple(tuple(str(p) for p in path) for path in raw if isinstance(path, list))
