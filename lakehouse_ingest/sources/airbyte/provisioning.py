"""The provisioning calls: definitions, sources and destinations (actors), discover, connection configurations.

Always the Config API (``<AIRBYTE_URL>/api/v1``), whatever ``AIRBYTE_API`` says: it discovers a source's
catalog with sync modes, cursors and keys, and reads connections in the shape the runtime already parses.
Creates are never retried (a lost answer may still have created the object); updates and reads are.
``AirbyteClient`` offers these calls next to the job and connection operations; what to provision is decided
in ``lakehouse_ingest.provisioning``.
"""

from __future__ import annotations

from typing import Any

from lakehouse_ingest.sources.airbyte.config_api import ConfigApi
from lakehouse_ingest.sources.airbyte.errors import AirbyteError
from lakehouse_ingest.sources.airbyte.provisioning_models import (
    Actor,
    ActorDefinition,
    ActorKind,
    ConnectionConfig,
    DiscoveredCatalog,
)


class ConfigProvisioning:
    """Reads and writes of the objects provisioning manages, on the Config API."""

    def __init__(self, config: ConfigApi) -> None:
        self.config = config

    def destination_definitions(self, workspace_id: str) -> list[ActorDefinition]:
        """The destination connectors the workspace can use."""
        body = self.config.post("destination_definitions/list_for_workspace", {"workspaceId": workspace_id})
        return [ActorDefinition.from_destination_read(d) for d in body.get("destinationDefinitions") or []]

    def actors(self, kind: ActorKind, workspace_id: str) -> list[Actor]:
        """The workspace's sources or destinations (secrets masked by the server)."""
        return [Actor.from_read(kind, d) for d in self._actor_pages(kind, workspace_id)]

    def create_actor(
        self, kind: ActorKind, workspace_id: str, name: str, definition_id: str, configuration: dict[str, Any]
    ) -> Actor:
        """Create a source or destination (never retried)."""
        request = {
            "workspaceId": workspace_id,
            "name": name,
            f"{kind}DefinitionId": definition_id,
            "connectionConfiguration": configuration,
        }
        return Actor.from_read(kind, self.config.post(f"{kind}s/create", request, retry=False))

    def update_actor(self, kind: ActorKind, actor_id: str, name: str, configuration: dict[str, Any]) -> Actor:
        """Replace a source's or destination's name and configuration (a masked secret keeps the stored value)."""
        request = {f"{kind}Id": actor_id, "name": name, "connectionConfiguration": configuration}
        return Actor.from_read(kind, self.config.post(f"{kind}s/update", request))

    def discover_source(self, source_id: str) -> DiscoveredCatalog:
        """Run discover on an existing source (not cached: a stream added upstream must show)."""
        request = {"sourceId": source_id, "disable_cache": True}
        body = self.config.post("sources/discover_schema", request, timeout=self.config.slow_timeout)
        return _discovered(body, f"source {source_id}")

    def discover_source_config(
        self, workspace_id: str, definition_id: str, configuration: dict[str, Any]
    ) -> DiscoveredCatalog:
        """Run discover on a configuration without creating a source (``scheduler/sources/discover_schema``)."""
        request = {
            "workspaceId": workspace_id,
            "sourceDefinitionId": definition_id,
            "connectionConfiguration": configuration,
        }
        body = self.config.post("scheduler/sources/discover_schema", request, timeout=self.config.slow_timeout)
        return _discovered(body, f"source definition {definition_id}")

    def connection_configs(self, workspace_id: str) -> list[ConnectionConfig]:
        """The workspace's connections, as provisioning compares them."""
        return [ConnectionConfig.from_config_api(c) for c in self.config.list_connections(workspace_id)]

    def connection_config(self, connection_id: str) -> ConnectionConfig:
        """One connection's configuration; ConnectionNotFoundError for an unknown id."""
        return ConnectionConfig.from_config_api(self.config.read_connection(connection_id))

    def create_connection(self, request: dict[str, Any]) -> ConnectionConfig:
        """Create a connection from a ConnectionCreate body (never retried)."""
        return ConnectionConfig.from_config_api(self.config.post("connections/create", request, retry=False))

    def update_connection(self, request: dict[str, Any]) -> ConnectionConfig:
        """Patch a connection with a ConnectionUpdate body (a catalog in it replaces the whole catalog)."""
        connection_id = str(request.get("connectionId"))
        body = self.config.post("connections/update", request, connection_id=connection_id)
        return ConnectionConfig.from_config_api(body)

    def _actor_pages(self, kind: ActorKind, workspace_id: str) -> list[dict[str, Any]]:
        """Every source or destination of the workspace: servers that page the list (their answer carries
        ``page_size``) are followed with ``cursor`` = the last id seen, so no object is missed."""
        id_key = f"{kind}Id"
        request: dict[str, Any] = {"workspaceId": workspace_id}
        found: dict[str, dict[str, Any]] = {}
        while True:
            body = self.config.post(f"{kind}s/list", request)
            page = body.get(f"{kind}s") or []
            new = [item for item in page if item[id_key] not in found]
            found.update((item[id_key], item) for item in new)
            size = body.get("page_size")
            if not new or not isinstance(size, int) or size <= 0 or len(page) < size:
                return list(found.values())
            request = {"workspaceId": workspace_id, "pageSize": size, "cursor": page[-1][id_key]}


def _discovered(body: dict[str, Any], what: str) -> DiscoveredCatalog:
    """The catalog of a SourceDiscoverSchemaRead; AirbyteError with the job's failure when discover failed."""
    job = body.get("jobInfo") or {}
    if not job.get("succeeded", True) or body.get("catalog") is None:
        failure = job.get("failureReason") or {}
        reason = failure.get("externalMessage") or failure.get("internalMessage") or "no catalog returned"
        raise AirbyteError(f"discovering the schema of {what} failed: {reason}")
    return DiscoveredCatalog.from_config_api(body)
