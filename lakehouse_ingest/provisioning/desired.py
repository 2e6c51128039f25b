"""What the catalog wants of a connection: its streams, validated against discovery, and the request bodies.

The connection ``connection_name`` goes source → destination, ``scheduleType: manual`` (Prefect owns
scheduling), ``namespaceDefinition: destination`` and no stream prefix (neither may change the folder), status
active, and the catalog's streams with their sync mode, destination sync mode, cursor and primary key, validated
against the source's discovered catalog (unknown stream, unsupported sync mode, missing cursor: a ConfigError
before anything is written). Streams the catalog does not list are deselected; without ``streams:`` every
discovered stream is selected with its defaults (incremental when the stream supports it and has a cursor, else
full refresh; append).
"""

from __future__ import annotations

import json
from typing import Any

from lakehouse_ingest.catalog.sources import SourceEntry, StreamSelection
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import to_alphanumeric_and_underscore
from lakehouse_ingest.provisioning.plan import Change, ProvisionPlan
from lakehouse_ingest.sources.airbyte.provisioning_models import DiscoveredCatalog, StreamSyncConfig
from lakehouse_ingest.sources.platform.identity import check_folders, stream_identity

NAMESPACE_DEFINITION = "destination"
SCHEDULE_TYPE = "manual"


def desired_streams(source: SourceEntry, catalog: DiscoveredCatalog) -> dict[str, StreamSyncConfig]:
    """The catalog's streams as sync configs, validated against the discovered catalog (ConfigError if not)."""
    where = f"source {source.name}"
    selections = source.streams or [StreamSelection(name=s.name) for s in catalog.streams]
    if not selections:
        raise ConfigError(f"{where}: the Airbyte source discovered no streams")
    unknown = [s.name for s in selections if catalog.stream(s.name) is None]
    if unknown:
        have = ", ".join(s.name for s in catalog.streams) or "none"
        raise ConfigError(f"{where}: stream {unknown[0]!r} is not in the Airbyte source's catalog (it has: {have})")
    # The connection this creates has no prefix and namespace definition "destination" (``connection_create_body``):
    # the runtime maps its streams the same way (``sources.platform.identity``).
    try:
        identities = [stream_identity(s.name, None, "", NAMESPACE_DEFINITION) for s in selections]
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    check_folders(identities, where)
    wanted: dict[str, StreamSyncConfig] = {}
    for selection in selections:
        discovered = catalog.stream(selection.name)
        assert discovered is not None
        stream_where = f"{where}: stream {selection.name!r}"
        supported = discovered.supported_sync_modes or ("full_refresh",)
        has_cursor = discovered.source_defined_cursor or bool(discovered.default_cursor_field or selection.cursor_field)
        mode = selection.sync_mode or ("incremental" if "incremental" in supported and has_cursor else "full_refresh")
        if mode not in supported:
            raise ConfigError(f"{stream_where}: sync_mode {mode} is not supported (supported: {', '.join(supported)})")
        cursor: tuple[str, ...] = ()
        if mode == "incremental":
            if discovered.source_defined_cursor:
                if selection.cursor_field and tuple(selection.cursor_field) != discovered.default_cursor_field:
                    raise ConfigError(
                        f"{stream_where}: the source defines its cursor {list(discovered.default_cursor_field)}; "
                        "drop cursor_field"
                    )
                cursor = discovered.default_cursor_field
            else:
                cursor = tuple(selection.cursor_field or discovered.default_cursor_field)
                if not cursor:
                    raise ConfigError(f"{stream_where}: incremental needs a cursor_field (the source has no default)")
        elif selection.cursor_field:
            raise ConfigError(f"{stream_where}: cursor_field applies to sync_mode incremental only")
        key = discovered.source_defined_primary_key
        if selection.primary_key is not None:
            declared = tuple(tuple(path) for path in selection.primary_key)
            if key and declared != key:
                raise ConfigError(
                    f"{stream_where}: the source defines its primary key {[list(p) for p in key]}; drop primary_key"
                )
            key = declared
        wanted[selection.name] = StreamSyncConfig(mode, selection.destination_sync_mode, cursor, key)
    return wanted


def describe_stream(stream: StreamSyncConfig) -> str:
    """``incremental/append cursor [updated_at] pk [[id]]`` (how people read a stream's settings)."""
    text = f"{stream.sync_mode}/{stream.destination_sync_mode}"
    if stream.cursor_field:
        text += f" cursor {json.dumps(list(stream.cursor_field))}"
    if stream.primary_key:
        text += f" pk {json.dumps([list(p) for p in stream.primary_key])}"
    return text


def _catalog_body(plan: ProvisionPlan) -> dict[str, Any]:
    """The whole syncCatalog: every discovered stream, the declared ones selected with their settings."""
    items = []
    for discovered in plan.catalog.streams:
        config = dict(discovered.default_config)
        config.setdefault("syncMode", (discovered.supported_sync_modes or ("full_refresh",))[0])
        config.setdefault("destinationSyncMode", "append")
        wanted = plan.streams.get(discovered.name)
        if wanted is None:
            config["selected"] = False
        else:
            config.update(
                selected=True,
                syncMode=wanted.sync_mode,
                destinationSyncMode=wanted.destination_sync_mode,
                cursorField=list(wanted.cursor_field),
                primaryKey=[list(p) for p in wanted.primary_key],
                # what the platform itself puts there (CatalogConverter.toApi): never read, never a name
                aliasName=to_alphanumeric_and_underscore(discovered.name),
            )
        items.append({"stream": discovered.schema, "config": config})
    return {"streams": items}


def connection_create_body(plan: ProvisionPlan) -> dict[str, Any]:
    """A ConnectionCreate for the plan (ids known by now)."""
    body: dict[str, Any] = {
        "sourceId": plan.source_id,
        "destinationId": plan.destination_id,
        "status": "active",
        "scheduleType": SCHEDULE_TYPE,
        "namespaceDefinition": NAMESPACE_DEFINITION,
        "prefix": "",
        "syncCatalog": _catalog_body(plan),
    }
    if plan.connection_name is not None:
        body["name"] = plan.connection_name
    if plan.catalog.catalog_id:
        body["sourceCatalogId"] = plan.catalog.catalog_id
    return body


def connection_update_body(plan: ProvisionPlan, change: Change) -> dict[str, Any]:
    """A ConnectionUpdate (patch) with the managed fields; the catalog only when a stream changed."""
    body: dict[str, Any] = {
        "connectionId": plan.connection_id,
        "status": "active",
        "scheduleType": SCHEDULE_TYPE,
        "namespaceDefinition": NAMESPACE_DEFINITION,
        "prefix": "",
    }
    if plan.connection_name is not None:
        body["name"] = plan.connection_name
    if any(f.path.startswith("streams.") for f in change.fields):
        body["syncCatalog"] = _catalog_body(plan)
        if plan.catalog.catalog_id:
            body["sourceCatalogId"] = plan.catalog.catalog_id
    return body
