"""A connection's configured catalog as the fake Airbyte stores it and reads it back.

A connection created through the API keeps the syncCatalog it was sent, of which Airbyte stores only the selected
streams (airbyte-platform ``CatalogConverter.toConfiguredInternal``: "only streams marked as selected"). A
connection added by a test is built from its settings (:class:`FakeConnection` ``streams``, ``sync_modes``, ...).
Either way a read is what ``CatalogConverter.toApi`` makes of the stored streams: ``selected: true``,
``suggested: false``, and ``aliasName`` recomputed from the name every time (never what a client sent).
"""

from __future__ import annotations

import copy
from typing import Any

from support.fake_airbyte.naming import StreamNames, alias_name, received_name, received_namespace
from support.fake_airbyte.state import STREAM_JSON_SCHEMA, FakeConnection

DEFAULT_CURSOR = ["updated_at"]
DEFAULT_PRIMARY_KEY = [["id"]]


def stored_streams(conn: FakeConnection) -> list[dict[str, Any]]:
    """The configured streams (AirbyteStreamAndConfiguration, copies): selected ones only."""
    if conn.catalog is not None:
        return [copy.deepcopy(item) for item in conn.catalog if (item.get("config") or {}).get("selected") is not False]
    return [_added_stream(conn, name) for name in conn.streams]


def _added_stream(conn: FakeConnection, name: str) -> dict[str, Any]:
    """A stream of a connection a test added: full refresh / append keyed by ``id`` unless configured."""
    sync_mode, destination_sync_mode = conn.sync_modes.get(name, ("full_refresh", "append"))
    default_cursor = DEFAULT_CURSOR if sync_mode == "incremental" else []
    stream: dict[str, Any] = {
        "name": name,
        "jsonSchema": copy.deepcopy(STREAM_JSON_SCHEMA),
        "supportedSyncModes": ["full_refresh", "incremental"],
        "sourceDefinedCursor": False,
        "defaultCursorField": list(DEFAULT_CURSOR),
        "sourceDefinedPrimaryKey": copy.deepcopy(DEFAULT_PRIMARY_KEY),
        "isResumable": True,
    }
    namespace = conn.stream_namespaces.get(name)
    if namespace is not None:
        stream["namespace"] = namespace
    config = {
        "syncMode": sync_mode,
        "cursorField": list(conn.cursor_fields.get(name, default_cursor)),
        "destinationSyncMode": destination_sync_mode,
        "primaryKey": copy.deepcopy(conn.primary_keys.get(name, DEFAULT_PRIMARY_KEY)),
        "fieldSelectionEnabled": False,
    }
    return {"stream": stream, "config": config}


def read_streams(conn: FakeConnection) -> list[dict[str, Any]]:
    """The syncCatalog streams of a ConnectionRead (``CatalogConverter.toApi``)."""
    found = []
    for item in stored_streams(conn):
        config = item.setdefault("config", {})
        config["aliasName"] = alias_name(item["stream"]["name"])  # recomputed on every read
        config["selected"] = True
        config["suggested"] = False
        config.setdefault("fieldSelectionEnabled", False)
        config.setdefault("selectedFields", [])
        config.setdefault("hashedFields", [])
        config.setdefault("mappers", [])
        found.append(item)
    return found


def stream_names(conn: FakeConnection) -> list[StreamNames]:
    """Each configured stream as the source names it and as the destination receives it."""
    found = []
    for item in stored_streams(conn):
        stream, config = item["stream"], item.get("config") or {}
        namespace = stream.get("namespace")
        found.append(
            StreamNames(
                name=str(stream["name"]),
                namespace=namespace,
                destination_name=received_name(str(stream["name"]), conn.prefix),
                destination_namespace=received_namespace(namespace, conn.namespace_definition, conn.namespace_format),
                sync_mode=str(config.get("syncMode") or "full_refresh"),
            )
        )
    return found


def descriptor(name: str, namespace: str | None) -> dict[str, str]:
    """A StreamDescriptor (the namespace only when there is one: nulls are omitted)."""
    return {"name": name} if namespace is None else {"name": name, "namespace": namespace}
