"""The reconciler: reads the Airbyte server, plans every catalog source, then applies the plans.

For every source of the catalog with an ``airbyte:`` block (and a ``connection_id`` or ``connection_name``):
the **source** is looked up by ``source_id`` or ``source_name`` in the workspace (with ``source_definition_id``
and ``source_config`` it is created when absent and updated when its configuration differs); the **destination**
is the S3 one of :mod:`~lakehouse_ingest.provisioning.target`; the **connection** ``connection_name`` is created
when absent (a ``connection_id`` must exist) as :mod:`~lakehouse_ingest.provisioning.desired` declares it.

Everything is planned first (reads only, including discover), then applied in order source → destination →
connection. Always the Config API (``<AIRBYTE_URL>/api/v1``), see
:class:`~lakehouse_ingest.sources.airbyte.client.AirbyteClient`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.provisioning.desired import (
    NAMESPACE_DEFINITION,
    SCHEDULE_TYPE,
    connection_create_body,
    connection_update_body,
    describe_stream,
    desired_streams,
)
from lakehouse_ingest.provisioning.diff import config_listing, diff_config, diff_connection, secret_values
from lakehouse_ingest.provisioning.plan import Action, Change, FieldChange, ProvisionPlan
from lakehouse_ingest.provisioning.target import DESTINATION_PREFIX, DESTINATION_SECRETS, S3_REPOSITORY, S3Target
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.connections import Workspace
from lakehouse_ingest.sources.airbyte.errors import ConnectionNotFoundError
from lakehouse_ingest.sources.airbyte.provisioning_models import Actor, ConnectionConfig


class Provisioner:
    """Plans and applies provisioning for catalog sources against one Airbyte server."""

    def __init__(self, client: AirbyteClient, target: S3Target, *, update_secrets: bool = False) -> None:
        self.client = client
        self.target = target
        self.update_secrets = update_secrets
        self._workspaces: list[Workspace] | None = None
        self._cache: dict[tuple[str, str], Any] = {}

    # -- planning (reads only) -------------------------------------------------------------------------------
    def plan(self, sources: list[SourceEntry]) -> list[ProvisionPlan]:
        """Plan every source; raises ConfigError (nothing written) on the first bad declaration."""
        plans = []
        for source in sources:
            if source.airbyte is None:
                raise ConfigError(f"source {source.name}: has no 'airbyte:' block to provision")
            plans.append(self._plan_source(source))
        names = [p.destination_name for p in plans]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"destination {repeated[0]!r} is declared by more than one source; one per source")
        return plans

    def _plan_source(self, source: SourceEntry) -> ProvisionPlan:
        prov = source.airbyte
        assert prov is not None
        where = f"source {source.name}"
        connection: ConnectionConfig | None = None
        if source.connection_id is not None:
            try:
                connection = self.client.connection_config(source.connection_id)
            except ConnectionNotFoundError:
                raise ConfigError(
                    f"{where}: connection_id {source.connection_id} does not exist on the Airbyte server "
                    "(provisioning creates connections by connection_name only)"
                ) from None
        workspace = self._workspace(where, prov.workspace, connection)
        plan = ProvisionPlan(source.name, workspace.id, connection_name=source.connection_name)

        # source, and its discovered catalog
        self._plan_airbyte_source(where, source, workspace, plan)
        source_change = plan.change("source")
        if plan.source_config is not None and (source_change is None or source_change.action != "unchanged"):
            assert plan.source_definition_id is not None
            plan.catalog = self.client.discover_source_config(
                workspace.id, plan.source_definition_id, plan.source_config
            )
        else:
            assert plan.source_id is not None
            plan.catalog = self.client.discover_source(plan.source_id)
        plan.streams = desired_streams(source, plan.catalog)

        # destination
        plan.destination_name = prov.destination_name or f"{DESTINATION_PREFIX}{source.name}"
        plan.destination_config = self.target.destination_config(source.name)
        plan.secrets += [str(v) for k, v in plan.destination_config.items() if k in DESTINATION_SECRETS]
        plan.destination_definition_id = self._s3_definition(where, workspace.id)
        destination = self._unique(
            where,
            "destination",
            plan.destination_name,
            [d for d in self._destinations(workspace.id) if d.name == plan.destination_name],
        )
        if destination is None:
            fields = config_listing(plan.destination_config, DESTINATION_SECRETS)
            plan.changes.append(Change("destination", plan.destination_name, "create", fields))
        else:
            if destination.definition_id != plan.destination_definition_id:
                raise ConfigError(
                    f"{where}: destination {plan.destination_name!r} exists but is not an S3 destination "
                    f"({S3_REPOSITORY})"
                )
            plan.destination_id = destination.id
            fields = diff_config(
                plan.destination_config, destination.configuration, DESTINATION_SECRETS, self.update_secrets
            )
            action: Action = "update" if fields else "unchanged"
            plan.changes.append(Change("destination", plan.destination_name, action, fields, destination.id))

        # connection
        if connection is None:
            assert source.connection_name is not None
            candidates = [
                c
                for c in self._connections(workspace.id)
                if c.name == source.connection_name and c.status != "deprecated"
            ]
            connection = self._unique(where, "connection", source.connection_name, candidates)
        label = source.connection_name or (connection.name if connection is not None else "")
        if connection is None:
            fields = [
                FieldChange("source", "", prov.source_name or str(prov.source_id)),
                FieldChange("destination", "", plan.destination_name),
                FieldChange("scheduleType", "", SCHEDULE_TYPE),
                FieldChange("namespaceDefinition", "", NAMESPACE_DEFINITION),
                FieldChange("prefix", "", '""'),
                FieldChange("status", "", "active"),
                *(FieldChange(f"streams.{n}", "", describe_stream(s)) for n, s in plan.streams.items()),
            ]
            plan.changes.append(Change("connection", label, "create", fields))
            return plan
        if plan.source_id is None or connection.source_id != plan.source_id:
            raise ConfigError(
                f"{where}: connection {label!r} reads from source {connection.source_id}, not the declared one; "
                "Airbyte cannot change a connection's source: delete the connection or fix 'airbyte:'"
            )
        if plan.destination_id is None or connection.destination_id != plan.destination_id:
            raise ConfigError(
                f"{where}: connection {label!r} writes to destination {connection.destination_id}, not "
                f"{plan.destination_name!r}; Airbyte cannot move a connection: delete it, or set "
                "airbyte.destination_name to its destination's name"
            )
        plan.connection_id = connection.id
        fields = diff_connection(connection, source.connection_name, plan.streams, plan.catalog)
        action = "update" if fields else "unchanged"
        plan.changes.append(Change("connection", label, action, fields, connection.id))
        return plan

    def _plan_airbyte_source(self, where: str, source: SourceEntry, workspace: Workspace, plan: ProvisionPlan) -> None:
        """Find the Airbyte source; with a declared configuration, plan its creation or update."""
        prov = source.airbyte
        assert prov is not None
        sources = self._sources(workspace.id)
        if prov.source_id is not None:
            found = next((s for s in sources if s.id == prov.source_id), None)
            if found is None:
                raise ConfigError(
                    f"{where}: no Airbyte source with id {prov.source_id} in workspace {workspace.name!r}"
                )
            plan.source_id = found.id
            return
        assert prov.source_name is not None
        found = self._unique(where, "source", prov.source_name, [s for s in sources if s.name == prov.source_name])
        plan.source_id = found.id if found is not None else None
        plan.source_name = prov.source_name
        if prov.source_config is None:
            if found is None:
                raise ConfigError(
                    f"{where}: no Airbyte source named {prov.source_name!r} in workspace {workspace.name!r} "
                    "(declare source_definition_id and source_config to create it)"
                )
            return
        plan.source_definition_id = prov.source_definition_id
        plan.source_config = dict(prov.source_config)
        if found is None:
            plan.secrets += secret_values(plan.source_config, {})
            plan.changes.append(Change("source", prov.source_name, "create", config_listing(plan.source_config, ())))
            return
        plan.secrets += secret_values(plan.source_config, found.configuration)
        if found.definition_id != prov.source_definition_id:
            raise ConfigError(
                f"{where}: Airbyte source {prov.source_name!r} runs definition {found.definition_id}, "
                f"not {prov.source_definition_id}"
            )
        fields = diff_config(plan.source_config, found.configuration, (), self.update_secrets, ())
        plan.changes.append(Change("source", prov.source_name, "update" if fields else "unchanged", fields, found.id))

    def _workspace(self, where: str, wanted: str | None, connection: ConnectionConfig | None) -> Workspace:
        if self._workspaces is None:
            self._workspaces = self.client.workspaces()
        spaces = self._workspaces
        if wanted is not None:
            matches = [w for w in spaces if wanted in (w.id, w.name)]
            if len(matches) != 1:
                problem = "no workspace" if not matches else f"{len(matches)} workspaces"
                raise ConfigError(f"{where}: {problem} named {wanted!r} on the Airbyte server")
            return matches[0]
        if connection is not None and connection.workspace_id:
            found = next((w for w in spaces if w.id == connection.workspace_id), None)
            return found or Workspace(connection.workspace_id, connection.workspace_id)
        if len(spaces) != 1:
            raise ConfigError(
                f"{where}: the Airbyte server has {len(spaces)} workspaces; name one in airbyte.workspace"
            )
        return spaces[0]

    def _s3_definition(self, where: str, workspace_id: str) -> str:
        key = ("s3-definition", workspace_id)
        if key not in self._cache:
            definitions = self.client.destination_definitions(workspace_id)
            found = [d for d in definitions if d.docker_repository == S3_REPOSITORY]
            if not found:
                raise ConfigError(f"{where}: the workspace offers no S3 destination connector ({S3_REPOSITORY})")
            self._cache[key] = found[0].id
        return str(self._cache[key])

    def _sources(self, workspace_id: str) -> list[Actor]:
        return self._cached("sources", workspace_id, lambda ws: self.client.actors("source", ws))

    def _destinations(self, workspace_id: str) -> list[Actor]:
        return self._cached("destinations", workspace_id, lambda ws: self.client.actors("destination", ws))

    def _connections(self, workspace_id: str) -> list[ConnectionConfig]:
        return self._cached("connections", workspace_id, self.client.connection_configs)

    def _cached(self, kind: str, workspace_id: str, read: Callable[[str], list[Any]]) -> list[Any]:
        key = (kind, workspace_id)
        if key not in self._cache:
            self._cache[key] = read(workspace_id)
        return list(self._cache[key])

    @staticmethod
    def _unique(where: str, kind: str, name: str, found: list[Any]) -> Any:
        if len(found) > 1:
            raise ConfigError(f"{where}: {len(found)} Airbyte {kind}s are named {name!r}; keep one")
        return found[0] if found else None

    # -- applying --------------------------------------------------------------------------------------------
    def apply(self, plan: ProvisionPlan, report: Callable[[str], None]) -> int:
        """Make the plan's writes in order source → destination → connection; returns how many were made."""
        writes = 0
        source_change, dest_change, conn_change = (
            plan.change("source"),
            plan.change("destination"),
            plan.change("connection"),
        )
        if source_change is not None and source_change.action != "unchanged":
            assert plan.source_name is not None and plan.source_config is not None
            if plan.source_id is None:
                created = self.client.create_actor(
                    "source", plan.workspace_id, plan.source_name, str(plan.source_definition_id), plan.source_config
                )
                plan.source_id = source_change.object_id = created.id
            else:
                self.client.update_actor("source", plan.source_id, plan.source_name, plan.source_config)
            writes += 1
            report(f"{plan.source}: source {plan.source_name!r}: {_done(source_change.action)} ({plan.source_id})")
        if dest_change is not None and dest_change.action != "unchanged":
            if plan.destination_id is None:
                created = self.client.create_actor(
                    "destination",
                    plan.workspace_id,
                    plan.destination_name,
                    plan.destination_definition_id,
                    plan.destination_config,
                )
                plan.destination_id = dest_change.object_id = created.id
            else:
                self.client.update_actor(
                    "destination", plan.destination_id, plan.destination_name, plan.destination_config
                )
            writes += 1
            done = _done(dest_change.action)
            report(f"{plan.source}: destination {plan.destination_name!r}: {done} ({plan.destination_id})")
        if conn_change is not None and conn_change.action != "unchanged":
            assert plan.source_id is not None and plan.destination_id is not None
            if plan.connection_id is None:
                body = connection_create_body(plan)
                created_conn = self.client.create_connection(body)
                plan.connection_id = conn_change.object_id = created_conn.id
            else:
                self.client.update_connection(connection_update_body(plan, conn_change))
            writes += 1
            report(
                f"{plan.source}: connection {conn_change.name!r}: {_done(conn_change.action)} ({plan.connection_id})"
            )
        return writes


def _done(action: Action) -> str:
    return {"create": "created", "update": "updated", "unchanged": "unchanged"}[action]
