"""The Config API's connection and workspace routes: ``connections/get|list|create|update`` and
``workspaces/list`` / ``workspaces/list_by_organization_id``. A connection ``list_twice`` put in another
workspace is also listed there (the same connection reachable through two workspaces).

A connection created through the API keeps the syncCatalog it was given (reads show it as Airbyte's
``CatalogConverter.toApi`` does: :mod:`support.fake_airbyte.catalog`); the fake refuses what Airbyte refuses in
one (streams the source does not have, sync modes it does not support, incremental without a cursor, destination
sync modes destination-s3 cannot write) with a 422.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.routing import Route

from support.fake_airbyte.errors import config_invalid, config_not_found
from support.fake_airbyte.paging import row_page
from support.fake_airbyte.payloads import connection_read, workspace_read
from support.fake_airbyte.routing import Call, Reply, route
from support.fake_airbyte.state import S3_DEFINITION_ID, FakeActor, FakeConnection, FakeOptions, FakeState

# ConnectionUpdate fields -> FakeConnection attributes
UPDATABLE = (
    ("name", "name"),
    ("namespaceDefinition", "namespace_definition"),
    ("namespaceFormat", "namespace_format"),
    ("prefix", "prefix"),
    ("scheduleType", "schedule_type"),
    ("status", "status"),
)


class ConfigConnections:
    """Route handlers for connections and workspaces on the Config API."""

    def __init__(self, state: FakeState, options: FakeOptions) -> None:
        self.state = state
        self.options = options

    def routes(self) -> list[Route]:
        return [
            route("POST", "/connections/get", self.get),
            route("POST", "/connections/list", self.list_connections),
            route("POST", "/connections/create", self.create),
            route("POST", "/connections/update", self.update),
            route("POST", "/workspaces/list", self.list_workspaces),
            route("POST", "/workspaces/list_by_organization_id", self.list_workspaces_by_organization),
        ]

    def get(self, call: Call) -> Reply:
        with self.state.lock:
            conn = self.state.connections.get(str(call.body.get("connectionId")))
            if conn is None:
                return config_not_found("connection", call.body.get("connectionId"), self.options.error_style)
            return Reply(200, connection_read(conn))

    def list_connections(self, call: Call) -> Reply:
        workspace_id = str(call.body.get("workspaceId"))
        with self.state.lock:
            if workspace_id not in self.state.workspaces:
                return config_not_found("workspace", workspace_id, self.options.error_style)
            tombstones = bool(call.body.get("includeTombstone"))
            twice = self.state.listed_twice
            found = [
                connection_read(c)
                for c in self.state.connections.values()
                if (c.workspace_id == workspace_id or twice.get(c.connection_id, c.workspace_id) == workspace_id)
                and (tombstones or c.status != "deprecated")
            ]
        return Reply(200, {"connections": found})

    def create(self, call: Call) -> Reply:
        body, state, style = call.body, self.state, self.options.error_style
        with state.lock:
            source = state.sources.get(str(body.get("sourceId")))
            if source is None:
                return config_not_found("source", body.get("sourceId"), style)
            destination = state.destinations.get(str(body.get("destinationId")))
            if destination is None:
                return config_not_found("destination", body.get("destinationId"), style)
            catalog = list((body.get("syncCatalog") or {}).get("streams") or [])
            problems = check_catalog(source, destination, catalog)
            if source.workspace_id != destination.workspace_id:
                problems.append("source and destination are in different workspaces")
            if problems:
                return config_invalid(problems)
            connection = FakeConnection(
                str(uuid.uuid4()),
                str(body.get("name") or f"{source.name} <> {destination.name}"),
                source.workspace_id,
                str(body.get("status")),
                _selected(catalog),
                _source_folder(destination),
                source_id=source.actor_id,
                destination_id=destination.actor_id,
                catalog=catalog,
                namespace_definition=str(body.get("namespaceDefinition") or "source"),
                namespace_format=body.get("namespaceFormat"),
                prefix=str(body.get("prefix") or ""),
                schedule_type=str(body.get("scheduleType") or "manual"),
            )
            state.connections[connection.connection_id] = connection
            return Reply(200, connection_read(connection))

    def update(self, call: Call) -> Reply:
        body, state = call.body, self.state
        connection_id = str(body.get("connectionId"))
        with state.lock:
            conn = state.connections.get(connection_id)
            if conn is None:
                return config_not_found("connection", connection_id, self.options.error_style)
            if body.get("syncCatalog") is not None:
                catalog = list(body["syncCatalog"].get("streams") or [])
                problems = check_catalog(
                    state.sources.get(conn.source_id), state.destinations.get(conn.destination_id), catalog
                )
                if problems:
                    return config_invalid(problems)
                conn.catalog = catalog
                conn.streams = _selected(catalog)
            for key, attr in UPDATABLE:
                if body.get(key) is not None:
                    setattr(conn, attr, body[key])
            return Reply(200, connection_read(conn))

    def list_workspaces(self, call: Call) -> Reply:
        with self.state.lock:
            found = [workspace_read(w) for w in self.state.workspaces.values() if not w.tombstone]
        return Reply(200, {"workspaces": found})

    def list_workspaces_by_organization(self, call: Call) -> Reply:
        org = str(call.body.get("organizationId"))
        needle = str(call.body.get("nameContains") or "").lower()
        with self.state.lock:
            found = sorted(
                (
                    w
                    for w in self.state.workspaces.values()
                    if w.organization_id == org and not w.tombstone and needle in w.name.lower()
                ),
                key=lambda w: w.name.lower(),
            )
            page = row_page(found, call.body.get("pagination"))
            return Reply(200, {"workspaces": [workspace_read(w) for w in page]})


def check_catalog(source: FakeActor | None, destination: FakeActor | None, items: list[Any]) -> list[str]:
    """What Airbyte refuses in a syncCatalog: unknown streams, unsupported modes, missing cursors."""
    problems = []
    known = {s.name: s for s in source.streams} if source is not None else None
    s3 = destination is not None and destination.definition_id == S3_DEFINITION_ID
    for index, item in enumerate(items):
        name = (item.get("stream") or {}).get("name")
        config = item.get("config") or {}
        where = f"syncCatalog.streams.{index} ({name})"
        if not config.get("selected", True):
            continue
        if known is not None and name not in known:
            problems.append(f"{where}: the source has no such stream")
            continue
        stream = known.get(name) if known is not None else None
        mode = config.get("syncMode")
        if stream is not None and mode not in stream.supported_sync_modes:
            problems.append(f"{where}: sync mode {mode} is not supported")
        cursor_needed = stream is None or not stream.source_defined_cursor
        if mode == "incremental" and cursor_needed and not config.get("cursorField"):
            problems.append(f"{where}: incremental needs a cursorField")
        if s3 and config.get("destinationSyncMode") not in {"append", "overwrite"}:
            problems.append(f"{where}: destination-s3 supports append and overwrite only")
    return problems


def _selected(catalog: list[dict[str, Any]]) -> list[str]:
    return [
        str((item.get("stream") or {}).get("name"))
        for item in catalog
        if (item.get("config") or {}).get("selected", True)
    ]


def _source_folder(destination: FakeActor) -> str:
    """The ``<source>`` of ``airbyte/<source>`` in the destination's bucket path (what the writer writes)."""
    path = str(destination.config.get("s3_bucket_path") or destination.name).strip("/")
    return path.rsplit("/", 1)[-1]
