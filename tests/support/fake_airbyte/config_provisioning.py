"""The Config API's provisioning routes: source and destination definitions, sources and destinations (list,
create, update) and schema discovery.

Secrets are stored in clear and read back masked (``**********``), as Airbyte does; an update that sends the mask
keeps the stored secret, and a mask with nothing stored behind it is refused. destination-s3's configuration is
checked as its spec would; other connectors accept any object. ``actor_page_size`` makes the list routes answer in
pages (``page_size``, then ``cursor`` = the last id), as newer servers do.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from functools import partial
from typing import Any

from starlette.routing import Route

from support.fake_airbyte.errors import config_invalid, config_not_found
from support.fake_airbyte.payloads import discovered
from support.fake_airbyte.routing import Call, Reply, route
from support.fake_airbyte.state import S3_DEFINITION_ID, FakeActor, FakeDefinition, FakeOptions, FakeState, FakeStream

SECRET_MASK = "**********"  # what Airbyte reads back in place of an airbyte_secret value
S3_REQUIRED = ("s3_bucket_name", "s3_bucket_path", "s3_bucket_region", "format")


class ConfigProvisioning:
    """Route handlers for definitions, sources, destinations and discover on the Config API."""

    def __init__(self, state: FakeState, options: FakeOptions) -> None:
        self.state = state
        self.options = options

    def routes(self) -> list[Route]:
        routes = [route("POST", "/destination_definitions/list_for_workspace", self.destination_definitions)]
        for kind in ("destination", "source"):
            routes += [
                route("POST", f"/{kind}s/list", partial(self.list_actors, kind=kind)),
                route("POST", f"/{kind}s/create", partial(self.create_actor, kind=kind)),
                route("POST", f"/{kind}s/update", partial(self.update_actor, kind=kind)),
            ]
        return [
            *routes,
            route("POST", "/sources/discover_schema", self.discover),
            route("POST", "/scheduler/sources/discover_schema", self.discover_definition),
        ]

    def destination_definitions(self, call: Call) -> Reply:
        workspace_id = str(call.body.get("workspaceId"))
        with self.state.lock:
            if workspace_id not in self.state.workspaces:
                return config_not_found("workspace", workspace_id, self.options.error_style)
            found = [
                {
                    "destinationDefinitionId": d.definition_id,
                    "name": d.name,
                    "dockerRepository": d.docker_repository,
                    "dockerImageTag": d.docker_image_tag,
                    "documentationUrl": f"https://docs.airbyte.com/integrations/destinations/{d.name.lower()}",
                    "supportLevel": "certified",
                    "releaseStage": "generally_available",
                }
                for d in self.state.destination_definitions.values()
            ]
        return Reply(200, {"destinationDefinitions": found})

    def list_actors(self, call: Call, kind: str) -> Reply:
        body = call.body
        workspace_id = str(body.get("workspaceId"))
        with self.state.lock:
            if workspace_id not in self.state.workspaces:
                return config_not_found("workspace", workspace_id, self.options.error_style)
            actors = [a for a in self._actors(kind).values() if a.workspace_id == workspace_id]
            size = body.get("pageSize") or self.options.actor_page_size
            if body.get("cursor") is not None:  # the page after the actor with this id
                ids = [a.actor_id for a in actors]
                actors = actors[ids.index(body["cursor"]) + 1 :] if body["cursor"] in ids else []
            page = actors[:size] if size else actors
            reply: dict[str, Any] = {f"{kind}s": [self._actor_read(a, kind) for a in page]}
            if size:
                reply["page_size"] = size
        return Reply(200, reply)

    def create_actor(self, call: Call, kind: str) -> Reply:
        body = call.body
        workspace_id = str(body.get("workspaceId"))
        definition_id = str(body.get(f"{kind}DefinitionId"))
        config = body.get("connectionConfiguration") or {}
        with self.state.lock:
            if workspace_id not in self.state.workspaces:
                return config_not_found("workspace", workspace_id, self.options.error_style)
            definition = self._definitions(kind).get(definition_id)
            if definition is None:
                return config_not_found(f"{kind}_definition", definition_id, self.options.error_style)
            problems = _check_actor_config(kind, definition, config)
            problems += [f"{path}: a masked secret cannot be stored" for path in _masked_paths(config)]
            if problems:
                return config_invalid(problems)
            actor = FakeActor(str(uuid.uuid4()), str(body.get("name")), workspace_id, definition_id, dict(config))
            if kind == "source":
                actor.streams = list(definition.streams)
            self._actors(kind)[actor.actor_id] = actor
            return Reply(200, self._actor_read(actor, kind))

    def update_actor(self, call: Call, kind: str) -> Reply:
        body = call.body
        actor_id = str(body.get(f"{kind}Id"))
        with self.state.lock:
            actor = self._actors(kind).get(actor_id)
            if actor is None:
                return config_not_found(kind, actor_id, self.options.error_style)
            definition = self._definitions(kind)[actor.definition_id]
            config = _unmask(body.get("connectionConfiguration") or {}, actor.config)
            problems = _check_actor_config(kind, definition, config)
            problems += [f"{path}: a masked secret with nothing stored" for path in _masked_paths(config)]
            if problems:
                return config_invalid(problems)
            actor.name = str(body.get("name"))
            actor.config = config
            return Reply(200, self._actor_read(actor, kind))

    def discover(self, call: Call) -> Reply:
        source_id = str(call.body.get("sourceId"))
        with self.state.lock:
            source = self.state.sources.get(source_id)
            if source is None:
                return config_not_found("source", source_id, self.options.error_style)
            return Reply(200, _discover_read(source.streams, source.discover_error, source_id))

    def discover_definition(self, call: Call) -> Reply:
        """``scheduler/sources/discover_schema``: what a new source of a definition would discover."""
        definition_id = str(call.body.get("sourceDefinitionId"))
        with self.state.lock:
            if str(call.body.get("workspaceId")) not in self.state.workspaces:
                return config_not_found("workspace", call.body.get("workspaceId"), self.options.error_style)
            definition = self.state.source_definitions.get(definition_id)
            if definition is None:
                return config_not_found("source_definition", definition_id, self.options.error_style)
            return Reply(200, _discover_read(definition.streams, None, None))

    def _actors(self, kind: str) -> dict[str, FakeActor]:
        return self.state.sources if kind == "source" else self.state.destinations

    def _definitions(self, kind: str) -> dict[str, FakeDefinition]:
        return self.state.source_definitions if kind == "source" else self.state.destination_definitions

    def _actor_read(self, actor: FakeActor, kind: str) -> dict[str, Any]:
        """A SourceRead / DestinationRead: secrets masked, status and count from the connections using it."""
        definition = self._definitions(kind).get(actor.definition_id)
        secrets = definition.secrets if definition is not None else ()
        key = "sourceId" if kind == "source" else "destinationId"
        used = [c for c in self.state.connections.values() if actor.actor_id in (c.source_id, c.destination_id)]
        return {
            f"{kind}DefinitionId": actor.definition_id,
            key: actor.actor_id,
            "workspaceId": actor.workspace_id,
            "connectionConfiguration": _mask(actor.config, secrets),
            "name": actor.name,
            f"{kind}Name": definition.name if definition is not None else "",
            "createdAt": int(actor.created_at),
            "status": "active" if any(c.status == "active" for c in used) else "inactive",
            "numConnections": len(used),
            "isVersionOverrideApplied": False,
            "supportState": "supported",
        }


def _check_actor_config(kind: str, definition: FakeDefinition, config: dict[str, Any]) -> list[str]:
    """What destination-s3's spec would refuse (other connectors accept any object)."""
    if kind != "destination" or definition.definition_id != S3_DEFINITION_ID:
        return []
    problems = [f"connectionConfiguration.{key}: required" for key in S3_REQUIRED if key not in config]
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("format_type") not in {"CSV", "JSONL", "Avro", "Parquet"}:
        problems.append(f"connectionConfiguration.format.format_type: {fmt.get('format_type')!r} is not a format")
    return problems


def _discover_read(streams: list[FakeStream], error: str | None, config_id: str | None) -> dict[str, Any]:
    """A SourceDiscoverSchemaRead: the catalog, or only the failed job when discover fails with ``error``."""
    now = time.time()
    job: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "configType": "discover_schema",
        "createdAt": int(now),
        "endedAt": int(now),
        "succeeded": error is None,
    }
    if config_id is not None:
        job["configId"] = config_id
    if error is not None:
        job["failureReason"] = {
            "failureOrigin": "source",
            "failureType": "config_error",
            "externalMessage": error,
            "timestamp": int(now * 1000),
        }
        return {"jobInfo": job}
    return {
        "catalog": {"streams": [discovered(s) for s in streams]},
        "jobInfo": job,
        "catalogId": str(uuid.uuid4()),
    }


def _mask(config: dict[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """The configuration as Airbyte reads it back: secret values (at any depth) masked."""
    names = set(secrets)
    return {
        key: _mask(value, names) if isinstance(value, dict) else (SECRET_MASK if key in names else value)
        for key, value in config.items()
    }


def _unmask(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """An update's configuration with masked values replaced by the stored secrets (as Airbyte merges them)."""
    merged: dict[str, Any] = {}
    for key, value in new.items():
        old = stored.get(key)
        if isinstance(value, dict):
            merged[key] = _unmask(value, old if isinstance(old, dict) else {})
        elif value == SECRET_MASK and old is not None:
            merged[key] = old
        else:
            merged[key] = value
    return merged


def _masked_paths(config: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for key, value in config.items():
        if isinstance(value, dict):
            found += _masked_paths(value, f"{path}{key}.")
        elif value == SECRET_MASK:
            found.append(f"{path}{key}")
    return found
