"""A run's inputs, checked before anything starts: settings with their overrides, the sources selected, and
everything else the CLI can refuse before Prefect starts (a connector package, version or image that does not
exist, a declarative manifest that is invalid, connector configs against their specs and the connector's own
``check``, Airbyte settings). Bad input here is a ``ConfigError`` (exit 2) and nothing has been written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lakehouse_ingest.catalog.sources import SourceEntry, load_catalog
from lakehouse_ingest.errors import ConfigError, ConnectorError
from lakehouse_ingest.lake.roots import opened_storage
from lakehouse_ingest.settings import IngestSettings


def resolve_settings(catalog: str | None, bronze: str | None, silver: str | None) -> IngestSettings:
    """Environment settings with explicit arguments taking precedence; both lake roots checked usable and reachable
    (a missing bucket, a refused key: ConfigError; an S3 server that does not answer: StorageError), so no sync
    starts that could not land or be merged."""
    overrides = {k: v for k, v in {"catalog": catalog, "bronze_uri": bronze, "silver_uri": silver}.items() if v}
    settings = IngestSettings(**overrides)  # type: ignore[arg-type]
    for uri in (settings.bronze_uri, settings.silver_uri):
        with opened_storage(uri) as storage:
            storage.check_reachable()
    return settings


def select_sources(settings: IngestSettings, sources: Sequence[str] | None) -> list[SourceEntry]:
    """The catalog's sources named (all when none are)."""
    return load_catalog(settings.catalog).select(sources)


def preflight(settings: IngestSettings, sources: Sequence[str] | None, say: Callable[[str], None]) -> list[SourceEntry]:
    """Everything refusable before a run starts: catalog, names, URIs, connectors, their configs, Airbyte settings.

    Installs each embedded connector that is not installed yet, or pulls its image (``say`` reports the progress),
    checks a manifest, validates the config against the spec and runs the connector's ``check``: a config it
    rejects is bad input. A check that could not run (a crash, a timeout) is left to the run, where it fails that
    source only.
    """
    selected = select_sources(settings, sources)
    # Imported here, once the selection stands: they bring jsonschema, pyarrow and httpx, which the CLI's
    # --dry-run and its refusals of a catalog, URI or source name do without (bench/cli_startup.py).
    from lakehouse_ingest.sources.embedded.connector import ConnectorInstaller
    from lakehouse_ingest.sources.embedded.plan import check_config, prepare_connector

    installer = ConnectorInstaller(settings.connector_cache_dir, say)
    for source in selected:
        if source.connector is not None:
            prepared = prepare_connector(source, installer)
            try:
                check_config(prepared)
            except ConfigError:
                raise
            except ConnectorError as exc:
                say(f"{source.name}: check could not run before the run ({exc}); planning tries again")
    if any(s.connector is None for s in selected):
        from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings

        AirbyteSettings.from_env()  # AIRBYTE_URL and credentials present and coherent
    return selected
