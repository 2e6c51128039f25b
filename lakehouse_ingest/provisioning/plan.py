"""Provision the catalog's platform sources on an Airbyte server: S3 destination into bronze, and connections.

For every source of the catalog with an ``airbyte:`` block (and a ``connection_id`` or ``connection_name``):

- **destination** ``lakehouse-bronze-<source>`` (or ``airbyte.destination_name``), one per source, of the
  workspace's ``airbyte/destination-s3`` definition: bucket and prefix from ``BRONZE_URI`` (``s3://bucket[/p]``),
  ``s3_bucket_path: [p/]airbyte/<source>``, ``s3_path_format: ${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_``
  and no ``file_name_pattern`` (the default ``{part_number}{format_extension}``), Parquet (SNAPPY). The key of a
  file is then ``[p/]airbyte/<source>/<stream>/<YYYY>_<MM>_<DD>_<epoch_ms>_<part>.parquet``: the layout that
  :mod:`lakehouse_ingest.sources.platform.job_files` finds by key epoch and sync id. ``${NAMESPACE}`` is
  deliberately absent (with it, a source namespace such as ``public`` becomes a folder:
  ``airbyte/<source>/public/<stream>/``).
  Endpoint, keys and region are the ones *Airbyte* uses to reach the bucket (``AIRBYTE_S3_ENDPOINT``,
  ``AIRBYTE_S3_ACCESS_KEY_ID`` / ``AIRBYTE_S3_SECRET_ACCESS_KEY``, ``AIRBYTE_S3_REGION``; each falls back to its
  ``AWS_*`` counterpart), never literals;
- **source**: looked up by ``source_id`` or ``source_name`` in the workspace; with ``source_definition_id`` and
  ``source_config`` it is created when absent and updated when its configuration differs;
- **connection** ``connection_name`` (created when absent; a ``connection_id`` must exist): source →
  destination, ``scheduleType: manual`` (Prefect owns scheduling), ``namespaceDefinition: destination`` and no
  stream prefix (neither may change the folder), status active, and the catalog's streams with their sync mode,
  destination sync mode, cursor and primary key, validated against the source's discovered catalog (unknown
  stream, unsupported sync mode, missing cursor: a ConfigError before anything is written). Streams the catalog
  does not list are deselected; without ``streams:`` every discovered stream is selected with its defaults
  (incremental when the stream supports it and has a cursor, else full refresh; append).

Everything is planned first (reads only, including discover), then applied in order source → destination →
connection. Comparison is on the fields managed here only, so a second run makes no write request. Airbyte
never reads secrets back (``**********``): a masked secret counts as unchanged, so a rotated key is only sent
with ``update_secrets`` (``--update-secrets``). Rendered plans show every secret as ``***``.

Always the Config API (``<AIRBYTE_URL>/api/v1``), see :class:`~lakehouse_ingest.sources.airbyte.client.AirbyteClient`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from lakehouse_ingest.catalog.sources import SourceEntry, StreamSelection
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import safe_stream_dir
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.connections import Workspace
from lakehouse_ingest.sources.airbyte.errors import ConnectionNotFoundError
from lakehouse_ingest.sources.airbyte.provisioning_models import (
    SECRET_MASK,
    Actor,
    ConnectionConfig,
    DiscoveredCatalog,
    StreamSyncConfig,
)

DESTINATION_PREFIX = "lakehouse-bronze-"
S3_REPOSITORY = "airbyte/destination-s3"
PATH_FORMAT = "${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_"
PARQUET_FORMAT: dict[str, Any] = {"format_type": "Parquet", "compression_codec": "SNAPPY"}
DESTINATION_SECRETS = frozenset({"access_key_id", "secret_access_key"})
# Destination keys this module does not set but that must be absent: they would move or rename the files.
MUST_BE_ABSENT = ("file_name_pattern",)
# Keys whose values are treated as secrets in source configurations (besides what the server masks).
_SECRET_KEY = re.compile(
    r"(?i)(password|secret|token|api_?key|access_?key|private_?key|passphrase|credentials_json|service_account)"
)
SHOWN_SECRET = "***"  # noqa: S105 - how a secret is shown, not a secret
NAMESPACE_DEFINITION = "destination"
SCHEDULE_TYPE = "manual"
Action = Literal["create", "update", "unchanged"]


# -- where Airbyte writes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Target:
    """The bronze bucket as Airbyte's S3 destination reaches it; secrets never in ``repr``."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = ""
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, bronze_uri: str, env: Mapping[str, str]) -> S3Target:
        """From the bronze URI (``s3://bucket[/prefix]``) and ``AIRBYTE_S3_*`` (falling back to ``AWS_*``)."""
        parts = urlsplit(bronze_uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(
                f"provisioning points Airbyte's S3 destination at bronze: BRONZE_URI (or --bronze) must be "
                f"s3://bucket[/prefix], not {bronze_uri!r}"
            )

        def setting(name: str) -> str | None:
            return env.get(f"AIRBYTE_S3_{name}") or env.get(f"AWS_{name}") or None

        endpoint = env.get("AIRBYTE_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ConfigError("AIRBYTE_S3_ENDPOINT must start with http:// or https://")
        key_id, secret = setting("ACCESS_KEY_ID"), setting("SECRET_ACCESS_KEY")
        if (key_id is None) != (secret is None):
            raise ConfigError("AIRBYTE_S3_ACCESS_KEY_ID and AIRBYTE_S3_SECRET_ACCESS_KEY go together")
        return cls(
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint=endpoint,
            region=setting("REGION") or "",
            access_key_id=key_id,
            secret_access_key=secret,
        )

    def bucket_path(self, source: str) -> str:
        """``s3_bucket_path`` of the source's destination: ``[prefix/]airbyte/<source>``."""
        return f"{self.prefix}/airbyte/{source}" if self.prefix else f"airbyte/{source}"

    def destination_config(self, source: str) -> dict[str, Any]:
        """The S3 destination configuration for ``source`` (keys set here are the ones compared)."""
        config: dict[str, Any] = {
            "s3_bucket_name": self.bucket,
            "s3_bucket_path": self.bucket_path(source),
            "s3_bucket_region": self.region,
            "s3_path_format": PATH_FORMAT,
            "format": dict(PARQUET_FORMAT),
        }
        if self.endpoint:
            config["s3_endpoint"] = self.endpoint
        if self.access_key_id and self.secret_access_key:
            config["access_key_id"] = self.access_key_id
            config["secret_access_key"] = self.secret_access_key
        return config

    @property
    def local_endpoint(self) -> bool:
        """True when the endpoint names this machine, which is rarely what Airbyte (in its cluster) reaches."""
        host = urlsplit(self.endpoint).hostname if self.endpoint else None
        return host in ("localhost", "127.0.0.1", "::1")


# -- the plan ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldChange:
    """One changed field, with values rendered for people (secrets as ``***``)."""

    path: str
    before: str
    after: str


@dataclass
class Change:
    """What happens to one Airbyte object: created, updated (which fields) or left unchanged."""

    kind: Literal["source", "destination", "connection"]
    name: str
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    object_id: str | None = None


@dataclass
class SourcePlan:
    """Everything planned for one catalog source (``changes`` in the order they apply)."""

    source: str
    workspace_id: str
    changes: list[Change] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # values never to print (see ``scrub``)
    # what applying needs
    source_id: str | None = None
    source_name: str | None = None
    source_definition_id: str | None = None
    source_config: dict[str, Any] | None = None
    destination_id: str | None = None
    destination_name: str = ""
    destination_definition_id: str = ""
    destination_config: dict[str, Any] = field(default_factory=dict)
    connection_id: str | None = None
    connection_name: str | None = None
    streams: dict[str, StreamSyncConfig] = field(default_factory=dict)
    catalog: DiscoveredCatalog = field(default_factory=lambda: DiscoveredCatalog(()))

    def change(self, kind: str) -> Change | None:
        """The change planned for the ``kind`` object, if any."""
        return next((c for c in self.changes if c.kind == kind), None)

    @property
    def writes(self) -> int:
        """How many objects this plan creates or updates."""
        return sum(1 for c in self.changes if c.action != "unchanged")


class Provisioner:
    """Plans and applies provisioning for catalog sources against one Airbyte server."""

    def __init__(self, client: AirbyteClient, target: S3Target, *, update_secrets: bool = False) -> None:
        self.client = client
        self.target = target
        self.update_secrets = update_secrets
        self._workspaces: list[Workspace] | None = None
        self._cache: dict[tuple[str, str], Any] = {}

    # -- planning (reads only) -------------------------------------------------------------------------------
    def plan(self, sources: list[SourceEntry]) -> list[SourcePlan]:
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

    def _plan_source(self, source: SourceEntry) -> SourcePlan:
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
        plan = SourcePlan(source.name, workspace.id, connection_name=source.connection_name)

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
            fields = _listing(plan.destination_config, DESTINATION_SECRETS)
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

    def _plan_airbyte_source(self, where: str, source: SourceEntry, workspace: Workspace, plan: SourcePlan) -> None:
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
            plan.secrets += _secret_values(plan.source_config, {})
            plan.changes.append(Change("source", prov.source_name, "create", _listing(plan.source_config, ())))
            return
        plan.secrets += _secret_values(plan.source_config, found.configuration)
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
    def apply(self, plan: SourcePlan, report: Callable[[str], None]) -> int:
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


# -- streams -------------------------------------------------------------------------------------------------------
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
    folders: dict[str, str] = {}
    wanted: dict[str, StreamSyncConfig] = {}
    for selection in selections:
        discovered = catalog.stream(selection.name)
        assert discovered is not None
        stream_where = f"{where}: stream {selection.name!r}"
        try:
            folder = safe_stream_dir(selection.name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if folder in folders:
            raise ConfigError(f"{where}: streams {folders[folder]!r} and {selection.name!r} share folder {folder!r}")
        folders[folder] = selection.name
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
    if stream.alias:
        text += f" alias {stream.alias}"
    return text


def diff_connection(
    actual: ConnectionConfig,
    name: str | None,
    streams: dict[str, StreamSyncConfig],
    catalog: DiscoveredCatalog | None = None,
) -> list[FieldChange]:
    """The managed fields of ``actual`` that differ from what is declared.

    A cursor or primary key the source defines itself may be stored empty (the server falls back to the
    source's): that is no difference.
    """
    changes = []
    wanted_top = {
        "name": (actual.name, name if name is not None else actual.name),
        "scheduleType": (actual.schedule_type, SCHEDULE_TYPE),
        "namespaceDefinition": (actual.namespace_definition, NAMESPACE_DEFINITION),
        "prefix": (actual.prefix, ""),
        "status": (actual.status, "active"),
    }
    for path, (before, after) in wanted_top.items():
        if before != after:
            changes.append(FieldChange(path, _shown(before), _shown(after)))
    for stream in sorted(set(actual.streams) | set(streams)):
        before_stream, after_stream = actual.streams.get(stream), streams.get(stream)
        discovered = catalog.stream(stream) if catalog is not None else None
        if before_stream is not None and after_stream is not None and discovered is not None:
            if discovered.source_defined_cursor and not before_stream.cursor_field:
                before_stream = replace(before_stream, cursor_field=after_stream.cursor_field)
            if discovered.source_defined_primary_key and not before_stream.primary_key:
                before_stream = replace(before_stream, primary_key=after_stream.primary_key)
        if before_stream == after_stream:
            continue
        if before_stream is None or after_stream is None:
            changes.append(
                FieldChange(
                    f"streams.{stream}",
                    describe_stream(before_stream) if before_stream else "(not synced)",
                    describe_stream(after_stream) if after_stream else "(not synced)",
                )
            )
            continue
        for attr, label in (
            ("sync_mode", "sync_mode"),
            ("destination_sync_mode", "destination_sync_mode"),
            ("cursor_field", "cursor_field"),
            ("primary_key", "primary_key"),
            ("alias", "alias"),
        ):
            old, new = getattr(before_stream, attr), getattr(after_stream, attr)
            if old != new:
                changes.append(FieldChange(f"streams.{stream}.{label}", _shown(old), _shown(new)))
    return changes


def _catalog_body(plan: SourcePlan) -> dict[str, Any]:
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
                aliasName=discovered.name,
            )
        items.append({"stream": discovered.schema, "config": config})
    return {"streams": items}


def connection_create_body(plan: SourcePlan) -> dict[str, Any]:
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


def connection_update_body(plan: SourcePlan, change: Change) -> dict[str, Any]:
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


# -- configurations ------------------------------------------------------------------------------------------------
def _is_secret(key: str, actual: object, secret_keys: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
    return key in secret_keys or bool(_SECRET_KEY.search(key)) or actual == SECRET_MASK


def diff_config(
    desired: Mapping[str, Any],
    actual: Mapping[str, Any],
    secret_keys: frozenset[str] | set[str] | tuple[str, ...],
    update_secrets: bool,
    must_be_absent: tuple[str, ...] = MUST_BE_ABSENT,
    path: str = "",
) -> list[FieldChange]:
    """What differs in the keys ``desired`` sets (nested objects key by key); secrets rendered ``***``.

    Airbyte reads secrets back as ``**********``: such a value counts as equal unless ``update_secrets``.
    Keys of ``actual`` that ``desired`` does not set are left alone, except ``must_be_absent`` ones.
    """
    changes: list[FieldChange] = []
    for key, want in desired.items():
        where = f"{path}{key}"
        have = actual.get(key, _ABSENT)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            changes += diff_config(want, have, secret_keys, update_secrets, (), where + ".")
            continue
        if _is_secret(key, have, secret_keys) and not isinstance(want, Mapping):
            if have is _ABSENT:
                changes.append(FieldChange(where, "(unset)", SHOWN_SECRET))
            elif have == SECRET_MASK:
                if update_secrets:
                    changes.append(FieldChange(where, SHOWN_SECRET, SHOWN_SECRET + " (rewritten)"))
            elif have != want:
                changes.append(FieldChange(where, SHOWN_SECRET, SHOWN_SECRET))
            continue
        if have != want:
            before = "(unset)" if have is _ABSENT else _shown(_masked(have, secret_keys))
            changes.append(FieldChange(where, before, _shown(_masked(want, secret_keys))))
    for key in must_be_absent:
        if key in actual and key not in desired:
            changes.append(FieldChange(f"{path}{key}", _shown(actual[key]), "(unset)"))
    return changes


class _Absent:
    def __repr__(self) -> str:
        return "(unset)"


_ABSENT: Any = _Absent()


def _masked(value: Any, secret_keys: frozenset[str] | set[str] | tuple[str, ...]) -> Any:
    """``value`` with secret leaves replaced by ``***`` (for rendering only)."""
    if isinstance(value, Mapping):
        return {
            k: SHOWN_SECRET
            if _is_secret(str(k), v, secret_keys) and not isinstance(v, Mapping | list)
            else _masked(v, secret_keys)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v, secret_keys) for v in value]
    return value


def _listing(
    config: Mapping[str, Any], secret_keys: frozenset[str] | set[str] | tuple[str, ...], path: str = ""
) -> list[FieldChange]:
    """Every leaf of a configuration to be created, secrets as ``***``."""
    fields = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            fields += _listing(value, secret_keys, f"{path}{key}.")
        else:
            shown = SHOWN_SECRET if _is_secret(str(key), value, secret_keys) else _shown(_masked(value, secret_keys))
            fields.append(FieldChange(f"{path}{key}", "", shown))
    return fields


def _secret_values(config: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The values of ``config`` that are secrets (to scrub from any message)."""
    found = []
    for key, value in config.items():
        have = actual.get(key) if isinstance(actual, Mapping) else None
        if isinstance(value, Mapping):
            found += _secret_values(value, have if isinstance(have, Mapping) else {})
        elif isinstance(value, str) and value and _is_secret(str(key), have, ()):
            found.append(value)
    return found


def _shown(value: Any) -> str:
    """A value as people read it: strings as they are (empty as ``""``), the rest as compact JSON."""
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, tuple):
        value = [list(v) if isinstance(v, tuple) else v for v in value]
    text = json.dumps(value, separators=(", ", ": "), default=str)
    return text if len(text) <= 160 else text[:160] + "..."


# -- output --------------------------------------------------------------------------------------------------------
def render_plan(plan: SourcePlan) -> list[str]:
    """The plan as lines: one per object (``create`` / ``update`` / ``unchanged``), then one per changed field."""
    lines = []
    for change in plan.changes:
        suffix = f" ({change.object_id})" if change.object_id else ""
        lines.append(f"{plan.source}: {change.kind} {change.name!r}: {change.action}{suffix}")
        for item in change.fields:
            if change.action == "create":
                lines.append(f"    {item.path}: {item.after}")
            else:
                lines.append(f"    {item.path}: {item.before} -> {item.after}")
    return lines


def summary(plans: list[SourcePlan]) -> str:
    """``3 to create, 1 to update, 2 unchanged``."""
    counts = {"create": 0, "update": 0, "unchanged": 0}
    for plan in plans:
        for change in plan.changes:
            counts[change.action] += 1
    return f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged"


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every known secret value replaced by ``***`` (error messages may echo request bodies)."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, SHOWN_SECRET)
    return text
