"""The YAML catalog of sources: parsed and validated up front, so bad input fails before any write.

```yaml
sources:
  - name: faker                      # folder under airbyte/, CLI --source name
    connector:                       # embedded engine: a real Airbyte source connector, one of
      package: airbyte-source-faker  #   package (PyPI) | image (Docker) | manifest (declarative); ConnectorSpec
      version: "7.2.1"
    config: {count: 1000, seed: 42}  # "${ENV_VAR}" strings are read from the environment
    streams:                         # optional; default: every stream the connector discovers
      - name: users
        sync_mode: incremental       # optional; default incremental when the stream supports it
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lakehouse_ingest.catalog.deployments import (
    DeploymentDefaults,
    DeploymentSpec,
    Duration,
    GroupEntry,
    duration_seconds,
)
from lakehouse_ingest.catalog.yaml_text import parse_yaml
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import validate_source_name

_PACKAGE = re.compile(r"airbyte-source-[a-z0-9][a-z0-9-]*")
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+!-]*")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_CATALOG = "default_catalog.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DECLARATIVE_PACKAGE = "airbyte-source-declarative-manifest"
# The runner of declarative manifests when the catalog names no version (tested with the README's example).
DECLARATIVE_VERSION = "6.5.2"
# An image reference: [registry[:port]/]path[:tag][@digest], path components lower case (Docker's grammar).
_IMAGE = re.compile(
    r"(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MEMORY = re.compile(r"[0-9]+(?:\.[0-9]+)?[bkmgBKMG]?")
_IMAGE_ONLY = ("network", "pull", "memory", "cpus")


class ConnectorSpec(_Model):
    """An Airbyte source connector run by the embedded engine, of one of three kinds (exactly one key of them):

    - ``package``: a Python connector published on PyPI as ``airbyte-source-<name>`` (``version`` pins it,
      ``executable`` names its console script when it is not ``source-<name>``), installed into its own virtualenv;
    - ``image``: a Docker image (``airbyte/source-postgres:3.6.22``), run as Airbyte's workers run it, through the
      Docker API (``DOCKER_HOST``); ``network`` (``bridge``, ``host``, ``none`` or a named network), ``pull``
      (``missing``, ``always``, ``never``), ``memory`` (``512m``, ``2g``) and ``cpus`` (``1.5``) apply to it;
    - ``manifest``: a declarative (low-code) manifest file, relative to the catalog file, run by
      ``airbyte-source-declarative-manifest`` (``version``, default ``DECLARATIVE_VERSION``).
    """

    package: str | None = None
    version: str | None = None
    executable: str | None = None
    image: str | None = None
    network: str = "bridge"
    pull: Literal["missing", "always", "never"] = "missing"
    memory: str | None = None
    cpus: float | None = Field(default=None, gt=0)
    manifest: Path | None = None

    @field_validator("package")
    @classmethod
    def _package(cls, value: str | None) -> str | None:
        if value is not None and not _PACKAGE.fullmatch(value):
            raise ValueError("must be a PyPI package named airbyte-source-<name>")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.fullmatch(value):
            raise ValueError("must be a plain version such as 7.2.1")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 255 or not _IMAGE.fullmatch(value)):
            raise ValueError("must be an image reference such as airbyte/source-postgres:3.6.22")
        return value

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if not _NETWORK.fullmatch(value):
            raise ValueError("must be bridge, host, none or the name of a Docker network")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.fullmatch(value):
            raise ValueError("must be a size such as 512m or 2g")
        return value

    @field_validator("manifest")
    @classmethod
    def _manifest(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Relative to the catalog file (``catalog_dir`` in the validation context), else to the working directory."""
        if value is None or value.is_absolute():
            return value
        base = (info.context or {}).get("catalog_dir")
        return (Path(base) / value) if base is not None else value.absolute()

    @model_validator(mode="after")
    def _kind(self) -> ConnectorSpec:
        kinds = [k for k in ("package", "image", "manifest") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f"has {' and '.join(kinds)}" if kinds else "has none"
            raise ValueError(
                f"needs exactly one of 'package' (PyPI), 'image' (Docker) or 'manifest' (declarative); {found}"
            )
        if self.image is not None:
            extra = [k for k in ("version", "executable") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"'{extra[0]}' does not apply to an image: the tag goes in 'image' (name:<tag>)")
        else:
            defaults = {k: type(self).model_fields[k].default for k in _IMAGE_ONLY}
            extra = [k for k in _IMAGE_ONLY if getattr(self, k) != defaults[k]]
            if extra:
                raise ValueError(f"'{extra[0]}' applies only to an 'image' connector")
        if self.manifest is not None and self.executable is not None:
            raise ValueError(f"'executable' does not apply to a manifest (it runs with {DECLARATIVE_PACKAGE})")
        return self

    @property
    def kind(self) -> Literal["package", "image", "manifest"]:
        """Which of the three kinds of connector this is."""
        if self.image is not None:
            return "image"
        return "manifest" if self.manifest is not None else "package"

    @property
    def pip_package(self) -> str:
        """The PyPI package that runs the connector (package and manifest kinds)."""
        if self.image is not None:
            raise ValueError(f"image connector {self.image} has no PyPI package")
        return self.package or DECLARATIVE_PACKAGE

    @property
    def pip_version(self) -> str | None:
        """The version to install (a manifest's runner is pinned by default)."""
        return self.version or (DECLARATIVE_VERSION if self.manifest is not None else None)

    @property
    def command(self) -> str:
        """The console script the package installs (``airbyte-source-faker`` → ``source-faker``)."""
        return self.executable or self.pip_package.removeprefix("airbyte-")

    @property
    def requirement(self) -> str:
        """The pip requirement, pinned when a version is given."""
        version = self.pip_version
        return f"{self.pip_package}=={version}" if version else self.pip_package

    @property
    def describe(self) -> str:
        """What runs, in a few words: the pip requirement, the image, or the manifest and its runner."""
        if self.image is not None:
            return f"image {self.image}"
        if self.manifest is not None:
            return f"manifest {self.manifest} ({self.requirement})"
        return self.requirement


class RangeRule(_Model):
    """Inclusive bounds; either may be omitted."""

    min: float | None = None
    max: float | None = None


class FreshnessRule(_Model):
    """The newest value of ``column`` (default ``_airbyte_extracted_at``) must be at most ``max_age`` old."""

    column: str = "_airbyte_extracted_at"
    max_age: str = Field(pattern=r"^\d+(\.\d+)?[smhd]$", description="e.g. 90s, 30m, 6h, 2d")

    @property
    def seconds(self) -> float:
        """``max_age`` in seconds."""
        return duration_seconds(self.max_age)


class StreamChecks(_Model):
    """Declarative checks of a stream's bronze batches (beyond the built-in ones)."""

    min_records: int | None = Field(default=None, ge=0)
    not_null: list[str] = Field(default_factory=list)
    unique: list[str] = Field(default_factory=list)
    accepted_values: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    range: dict[str, RangeRule] = Field(default_factory=dict)
    regex: dict[str, str] = Field(default_factory=dict)
    freshness: FreshnessRule | None = None
    # Rows carrying _airbyte_meta.changes allowed; None reports them without failing.
    max_changes: int | None = Field(default=None, ge=0)
    schema_drift: Literal["fail", "warn", "allow"] = "warn"
    # Decode every column, also those footer statistics or no check covers (catches corrupt pages; costs a full read).
    verify_data: bool = False
    # None: fail for overwrite streams (an empty snapshot would empty the silver table), allow otherwise.
    zero_rows: Literal["fail", "allow"] | None = None
    # When Airbyte reported no count for a batch (a server that kept no stats): warn and pass, or fail.
    reconcile: Literal["require", "warn"] = "warn"

    @field_validator("regex")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for column, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regex for {column!r} does not compile: {exc}") from None
        return value


class StreamSelection(_Model):
    """One stream to sync, with optional overrides of what the connector declares, and its checks."""

    name: str = Field(min_length=1)
    sync_mode: Literal["incremental", "full_refresh"] | None = None
    destination_sync_mode: Literal["append", "overwrite"] = "append"
    cursor_field: list[str] | None = None
    primary_key: list[list[str]] | None = None
    checks: StreamChecks = Field(default_factory=lambda: StreamChecks())

    @property
    def overrides_sync(self) -> bool:
        """True when the entry changes how the stream syncs (not only how it is checked)."""
        return bool(self.sync_mode or self.cursor_field or self.primary_key or self.destination_sync_mode != "append")


class AirbyteProvisioning(_Model):
    """What ``python -m deployments.provision`` needs to create or update a platform source's connection.

    ```yaml
      - name: stripe
        connection_name: stripe-bronze          # created when absent (connection_id: must exist)
        airbyte:
          workspace: Default Workspace          # name or id; default: the connection's, else the only one
          source_name: Stripe                   # existing Airbyte source in the workspace (or source_id)
          source_definition_id: e094cb9a-...    # optional, with source_config: create/update source_name
          source_config: {account_id: acct_1, client_secret: "${STRIPE_SECRET}"}
          destination_name: lakehouse-bronze-stripe   # optional; this is the default
        streams:                                # sync settings allowed here, validated against discover
          - {name: charges, sync_mode: incremental, cursor_field: [created], primary_key: [[id]]}
    ```
    """

    workspace: str | None = None
    source_id: str | None = None
    source_name: str | None = None
    source_definition_id: str | None = None
    source_config: dict[str, Any] | None = None
    destination_name: str | None = None

    @model_validator(mode="after")
    def _source(self) -> AirbyteProvisioning:
        if (self.source_id is None) == (self.source_name is None):
            raise ValueError("needs exactly one of 'source_id' (existing source) or 'source_name'")
        if (self.source_definition_id is None) != (self.source_config is None):
            raise ValueError("'source_definition_id' and 'source_config' go together")
        if self.source_config is not None and self.source_name is None:
            raise ValueError("'source_config' needs 'source_name' (the source to create or update)")
        return self


class SourceEntry(_Model):
    """One source of the catalog: embedded (``connector``) or on an Airbyte server (``connection_*``)."""

    def checks_for(self, stream: str, *aliases: str) -> StreamChecks:
        """The declared checks of ``stream`` (defaults when the catalog declares none).

        ``aliases``: other names the stream goes by (an Airbyte connection stream: its source name, while the
        batch carries the name the destination received, prefix included); the first declared one wins.
        """
        declared = {selection.name: selection.checks for selection in self.streams or []}
        for name in (stream, *aliases):
            if name in declared:
                return declared[name]
        return StreamChecks()

    name: str
    connector: ConnectorSpec | None = None
    connection_id: str | None = None
    connection_name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    streams: list[StreamSelection] | None = None
    airbyte: AirbyteProvisioning | None = None  # provisioning of a platform source (deployments.provision)
    # A run within this long of the source's last successful sync skips it (the seeds' conditional syncs).
    min_interval: Duration | None = None
    deployment: DeploymentSpec | None = None

    @property
    def min_interval_seconds(self) -> float | None:
        """``min_interval`` in seconds, or None."""
        return duration_seconds(self.min_interval) if self.min_interval else None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_source_name(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _engine(self) -> SourceEntry:
        engines = [k for k in ("connector", "connection_id", "connection_name") if getattr(self, k) is not None]
        if not engines:
            raise ValueError(
                "needs a 'connector' (embedded engine) or a 'connection_id' / 'connection_name' (Airbyte server)"
            )
        if len(engines) > 1:
            raise ValueError(f"has {' and '.join(engines)}; give exactly one")
        if self.airbyte is not None and self.connector is not None:
            raise ValueError("'airbyte' provisions a connection; it needs 'connection_id' or 'connection_name'")
        sync_settings = self.airbyte is None and any(s.overrides_sync for s in self.streams or [])
        if self.connector is None and (self.config or sync_settings):
            raise ValueError(
                "'config' and stream sync settings belong to embedded sources; Airbyte keeps them for connections "
                "(streams of an Airbyte source take only 'name' and 'checks', unless it has an 'airbyte:' block)"
            )
        names = [s.name for s in self.streams or []]
        if len(names) != len(set(names)):
            raise ValueError("lists a stream twice")
        return self


class Catalog(_Model):
    """The sources this project ingests."""

    sources: list[SourceEntry] = Field(min_length=1)
    deployments: DeploymentDefaults = Field(default_factory=lambda: DeploymentDefaults())
    groups: list[GroupEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _groups(self) -> Catalog:
        """Each source is deployed once: alone, or in exactly one group; group names are deployment names."""
        by_name = {s.name: s for s in self.sources}
        seen: dict[str, str] = {}
        for group in self.groups:
            if group.name in by_name or group.name in seen.values():
                raise ValueError(f"group {group.name!r} has the name of a source or of another group")
            for name in group.sources:
                if name not in by_name:
                    raise ValueError(f"group {group.name!r} lists unknown source {name!r}")
                if name in seen:
                    raise ValueError(f"source {name!r} is in groups {seen[name]!r} and {group.name!r}; pick one")
                if by_name[name].deployment is not None:
                    raise ValueError(
                        f"source {name!r} is deployed by group {group.name!r}; move its 'deployment' there"
                    )
                seen[name] = group.name
        return self

    def deployment_units(self) -> list[tuple[str, list[SourceEntry], DeploymentSpec]]:
        """One (name, sources, spec) per bronze deployment: each group, then each source not in a group."""
        by_name = {s.name: s for s in self.sources}
        grouped = {name for group in self.groups for name in group.sources}
        units = [(g.name, [by_name[n] for n in g.sources], g.deployment) for g in self.groups]
        units += [(s.name, [s], s.deployment or DeploymentSpec()) for s in self.sources if s.name not in grouped]
        return units

    def select(self, names: Sequence[str] | None) -> list[SourceEntry]:
        """The sources named (all when ``names`` is empty), refusing unknown names."""
        if not names:
            return list(self.sources)
        known = {s.name: s for s in self.sources}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"unknown source {', '.join(map(repr, unknown))}; the catalog has: {', '.join(known)}")
        return [known[n] for n in dict.fromkeys(names)]


def load_catalog(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Catalog:
    """Load the catalog at ``path`` (or the built-in default), resolving ``${ENV}`` references."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_CATALOG).read_text(encoding="utf-8")
        where = "built-in catalog"
    else:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read catalog {where}: {exc.strerror or exc}") from None
    base = Path(str(resources.files(__package__))) if path is None else Path(path).absolute().parent
    return parse_catalog(text, where, os.environ if env is None else env, base)


def parse_catalog(text: str, where: str, env: Mapping[str, str], base: Path | None = None) -> Catalog:
    """Parse catalog YAML text; every problem becomes one ConfigError line naming its place.

    ``base``: the folder relative paths in the catalog (a connector's ``manifest``) are resolved against; the
    catalog file's own folder when loaded from a file.
    """
    raw = parse_yaml(text, f"catalog {where}")
    if not isinstance(raw, dict) or "sources" not in raw:
        raise ConfigError(f"catalog {where} must be a mapping with a top-level 'sources:' list")
    try:
        context = {"catalog_dir": base} if base is not None else None
        return Catalog.model_validate(_resolve_env(raw, env), context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "catalog"
        raise ConfigError(f"catalog {where}: {place}: {first['msg']}") from None


def _resolve_env(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` in strings with environment values, so secrets stay out of the YAML."""
    if isinstance(value, dict):
        return {k: _resolve_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, env) for v in value]
    if isinstance(value, str):
        missing = [m for m in _ENV_REF.findall(value) if m not in env]
        if missing:
            raise ConfigError(f"catalog refers to unset environment variable {missing[0]}")
        return _ENV_REF.sub(lambda m: env[m.group(1)], value)
    return value
