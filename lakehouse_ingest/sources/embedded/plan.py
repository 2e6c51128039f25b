"""Planning an embedded sync: everything that can fail on bad input, before a byte is written.

``prepare_connector`` makes the connector runnable and its config valid: installs the package (or the
declarative manifest's runner), or applies the image's pull policy; reads and checks a manifest; validates the
config against the connector's spec (a manifest's own spec). ``check_config`` runs the connector's ``check``.
The CLI's pre-flight and the flow's planning run in one process seconds apart: what succeeded (an image
resolved by its pull policy, a manifest checked, a config checked) is not done again within ``REUSE_SECONDS``;
a long-lived process (``deployments serve``) does it again for a later run.
``plan_source`` does both, runs ``discover`` and resolves the catalog's stream selection (sync modes, cursors,
primary keys, stream and column names). The result, an ``EmbeddedPlan``, is what ``sync.run_embedded_sync`` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema

from lakehouse_ingest.bronze.arrow_types import StreamColumns, stream_columns
from lakehouse_ingest.catalog.sources import SourceEntry, StreamSelection
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import safe_stream_dir, stream_key
from lakehouse_ingest.sources.embedded.connector import (
    Connector,
    ConnectorInstaller,
    LocalRuntime,
    Runtime,
    config_digest,
)
from lakehouse_ingest.sources.embedded.docker import resolve_image
from lakehouse_ingest.sources.embedded.install import install_logs_dir
from lakehouse_ingest.sources.embedded.manifest import check_manifest, inject, load_manifest

logger = logging.getLogger(__name__)
REUSE_SECONDS = 300.0
_done: dict[str, tuple[float, Any]] = {}
_done_lock = threading.Lock()
T = TypeVar("T")


def _once(key: str, work: Callable[[], T]) -> T:
    """``work()``, or its result from this process's last success with ``key`` within ``REUSE_SECONDS``."""
    with _done_lock:
        found = _done.get(key)
    if found is not None and time.monotonic() - found[0] < REUSE_SECONDS:
        reused: T = found[1]
        return reused
    result = work()
    with _done_lock:
        _done[key] = (time.monotonic(), result)
    return result


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class StreamPlan:
    """One configured stream: what to read and how it lands."""

    name: str
    namespace: str | None
    json_schema: dict[str, Any]
    sync_mode: str
    destination_sync_mode: str
    cursor_field: list[str]
    primary_key: list[list[str]]

    @property
    def state_key(self) -> str:
        """How STREAM state messages name this stream (``namespace.name`` or ``name``)."""
        return stream_key(self.name, self.namespace)

    @property
    def columns(self) -> StreamColumns:
        """The Parquet columns of this stream."""
        return stream_columns(self.json_schema)

    def configured(self) -> dict[str, Any]:
        """The ConfiguredAirbyteStream the connector's ``read`` expects."""
        stream: dict[str, Any] = {
            "name": self.name,
            "json_schema": self.json_schema,
            "supported_sync_modes": ["full_refresh", "incremental"],
        }
        if self.namespace:
            stream["namespace"] = self.namespace
        return {
            "stream": stream,
            "sync_mode": self.sync_mode,
            "destination_sync_mode": self.destination_sync_mode,
            "cursor_field": self.cursor_field,
            "primary_key": self.primary_key,
        }


@dataclass(frozen=True)
class PreparedConnector:
    """A connector ready to run for a source, and the config it receives (a manifest inlined)."""

    connector: Connector
    config: dict[str, Any]


@dataclass(frozen=True)
class EmbeddedPlan:
    """A source ready to sync: how its connector runs, the config it receives, and the configured streams."""

    source: SourceEntry
    runtime: Runtime
    streams: tuple[StreamPlan, ...]
    connector_config: dict[str, Any]
    secrets: tuple[str, ...] = ()

    def connector(self) -> Connector:
        """The connector that reads this plan."""
        return Connector(self.runtime, self.source.name, secrets=self.secrets)

    def configured_catalog(self) -> dict[str, Any]:
        """The ConfiguredAirbyteCatalog for ``read``."""
        return {"streams": [s.configured() for s in self.streams]}

    @property
    def full_refresh_keys(self) -> frozenset[str]:
        """State keys of the streams read in full, which get no state (see ``SourceState.connector_state``)."""
        return frozenset(s.state_key for s in self.streams if s.sync_mode == "full_refresh")


def plan_source(source: SourceEntry, installer: ConnectorInstaller, check: bool = True) -> EmbeddedPlan:
    """Validate everything about ``source`` that can be validated before writing anything."""
    prepared = prepare_connector(source, installer)
    if check:
        check_config(prepared)
    discovered = prepared.connector.discover(prepared.config)
    streams = select_streams(source, discovered)
    for warning in plan_warnings(source, streams):
        logger.warning("%s", warning)
    return EmbeddedPlan(
        source=source,
        runtime=prepared.connector.runtime,
        streams=tuple(streams),
        connector_config=prepared.config,
        secrets=prepared.connector.secrets,
    )


def prepare_connector(source: SourceEntry, installer: ConnectorInstaller) -> PreparedConnector:
    """Install or pull the connector, check a manifest, and validate the config against the connector's spec."""
    spec = source.connector
    if spec is None:
        raise ConfigError(f"source {source.name!r} has no 'connector' to run on the embedded engine")
    manifest: dict[str, Any] | None = None
    runtime: Runtime
    if spec.image is not None:
        image = spec.model_dump(include={"image", "pull", "network", "memory", "cpus"})
        key = _digest("image", image, os.environ.get("DOCKER_HOST"))
        runtime = _once(key, lambda: resolve_image(spec, installer.progress, install_logs_dir()))
    else:
        if spec.manifest is not None:
            manifest = load_manifest(spec.manifest, source.name)  # before installing: a typo fails in a second
        runtime = LocalRuntime(installer.executable(spec))
    connector = Connector(runtime, source.name, spec_cache=installer.cache_dir / "images")
    if manifest is not None and spec.manifest is not None:
        assert isinstance(runtime, LocalRuntime)
        python, path, loaded = runtime.executable.parent / "python", spec.manifest, manifest
        connector_spec = _once(
            _digest("manifest", str(python), manifest), lambda: check_manifest(python, loaded, path, source.name)
        )
    else:
        connector_spec = connector.spec()
    validate_config(source, connector_spec)
    secrets = secret_values(source.config, connector_spec.get("connectionSpecification") or {})
    connector = Connector(runtime, source.name, spec_cache=installer.cache_dir / "images", secrets=secrets)
    return PreparedConnector(connector=connector, config=inject(source.config, manifest))


def check_config(prepared: PreparedConnector) -> None:
    """Run the connector's ``check`` (unless this process just checked the same connector and config)."""
    _once(config_digest(prepared.connector, prepared.config), lambda: prepared.connector.check(prepared.config))


def plan_warnings(source: SourceEntry, streams: Sequence[StreamPlan]) -> list[str]:
    """What is allowed but probably not meant: a full refresh appended without a primary key."""
    return [
        f"{source.name}.{s.name}: full_refresh appended without a primary key: each sync adds a full copy to "
        "bronze, and silver keeps every copy (it has no key to merge by); set destination_sync_mode: overwrite "
        "to keep only the latest snapshot, or a primary_key to merge"
        for s in streams
        if s.sync_mode == "full_refresh" and s.destination_sync_mode == "append" and not s.primary_key
    ]


def secret_values(config: Any, schema: dict[str, Any]) -> list[str]:
    """The config's values at properties the spec marks ``airbyte_secret`` (in objects, oneOf/anyOf branches)."""
    return [str(v) for v in _secrets(config, schema) if isinstance(v, str | int) and not isinstance(v, bool)]


def _secrets(value: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not isinstance(schema, dict):
        return
    if schema.get("airbyte_secret"):
        yield value
        return
    for branch in (schema.get("oneOf") or []) + (schema.get("anyOf") or []) + (schema.get("allOf") or []):
        yield from _secrets(value, branch)
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                yield from _secrets(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            yield from _secrets(item, schema["items"])


def validate_config(source: SourceEntry, spec: dict[str, Any]) -> None:
    """Validate the source config against the connector's spec; errors never echo values (secrets)."""
    schema = spec.get("connectionSpecification") or {}
    validator = jsonschema.Draft7Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(source.config))
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path) or "config"
    if error.validator == "required":
        problem = error.message.split(" is a required")[0] + " is required"
    elif error.validator in {"type", "minimum", "maximum", "enum", "const", "pattern", "format"}:
        problem = f"fails {error.validator} {error.validator_value!r}"
    else:
        problem = f"fails {error.validator}"
    raise ConfigError(f"source {source.name!r}: invalid connector config: {where}: {problem}")


def select_streams(source: SourceEntry, discovered: Sequence[dict[str, Any]]) -> list[StreamPlan]:
    """The configured streams: the catalog's selection (or all), with sync modes resolved."""
    by_name = {s["name"]: s for s in discovered}
    for name in by_name:
        safe_stream_dir(name)
    selections = source.streams or [StreamSelection(name=n) for n in by_name]
    unknown = [s.name for s in selections if s.name not in by_name]
    if unknown:
        raise ConfigError(
            f"source {source.name!r}: unknown stream {unknown[0]!r}; the connector offers: {', '.join(by_name)}"
        )
    plans = [_stream_plan(by_name[s.name], s) for s in selections]
    for plan in plans:
        plan.columns  # noqa: B018 - raises ConfigError on colliding column names, before any write
    return plans


def _stream_plan(stream: dict[str, Any], selection: StreamSelection) -> StreamPlan:
    modes = stream.get("supported_sync_modes") or ["full_refresh"]
    cursor = selection.cursor_field or stream.get("default_cursor_field") or []
    incremental_ok = "incremental" in modes and bool(cursor)
    mode = selection.sync_mode or ("incremental" if incremental_ok else "full_refresh")
    if mode == "incremental" and not incremental_ok:
        raise ConfigError(f"stream {stream['name']!r} does not support incremental sync with a cursor")
    return StreamPlan(
        name=stream["name"],
        namespace=stream.get("namespace"),
        json_schema=stream.get("json_schema") or {},
        sync_mode=mode,
        destination_sync_mode=selection.destination_sync_mode,
        cursor_field=list(cursor) if mode == "incremental" else [],
        primary_key=selection.primary_key or stream.get("source_defined_primary_key") or [],
    )
