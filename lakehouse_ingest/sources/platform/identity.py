"""Which stream is which on an Airbyte server: one mapping from a connection's stream to the name the
destination receives, the bronze folder Airbyte's S3 destination writes, and the keys its stats use.

Each rule is Airbyte's own (read from its source; see also ``lake.names``):

- **destination name** = ``prefix + name`` when the connection's prefix is not blank, else ``name``: raw
  concatenation, no sanitising. airbytehq/airbyte-platform ``airbyte-commons-worker/src/main/kotlin/io/airbyte/
  workers/internal/Mapper.kt`` (``NamespacingMapper.transformStreamName``); the bulk CDK's copy for socket mode is
  airbytehq/airbyte ``airbyte-cdk/bulk/core/load/src/main/kotlin/io/airbyte/cdk/load/command/NamespaceMapper.kt``.
- **destination namespace**: ``destination`` → none; ``customformat`` → ``namespaceFormat`` with
  ``${SOURCE_NAMESPACE}`` replaced by the source namespace (or ""), none when blank; ``source`` or no definition →
  the source namespace unchanged (same ``Mapper.kt``, ``transformNamespace``/``formatNamespace``).
- **aliasName is never a name**: the platform recomputes it on every read as ``toAlphanumericAndUnderscore(name)``
  and no code path uses it (airbyte-platform ``airbyte-commons-server/src/main/kotlin/io/airbyte/commons/server/
  handlers/helpers/CatalogConverter.kt`` ``toApi``; ``ConfiguredAirbyteStream.kt`` stores no alias).
- **bronze folder** = ``toS3SafeCharacters(destination name)`` (``lake.names.to_s3_safe``): the bulk CDK's
  ``ObjectStoragePathFactory`` fills ``${STREAM_NAME}`` from the mapped (prefixed) descriptor. The namespace is not
  in this project's path format (``provisioning.target.PATH_FORMAT``), so two streams that differ only by
  namespace would share a folder: refused (``check_folders``).
- **stats keys**: since platform v0.50.24 stats are counted on the source's message before mapping, so they carry
  the *source* name and namespace (airbyte-platform ``airbyte-container-orchestrator/.../worker/
  ReplicationWorkerHelper.kt``: ``messageTracker.acceptFromSource`` before ``mapper.mapMessage``;
  ``bookkeeping/SyncStatsBuilder.kt``); ``jobs/get`` and the attempts of ``jobs/get_without_logs`` drop the
  namespace (``JobConverter.getAttemptStreamStats``); servers up to v0.50.21 counted the mapped message, so the
  prefixed name. A stream's stats are looked up in that order (``stats_keys``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import safe_stream_dir


def destination_name(name: str, prefix: str | None) -> str:
    """The stream name the destination receives (``NamespacingMapper.transformStreamName``)."""
    return name if prefix is None or not prefix.strip() else prefix + name


def destination_namespace(namespace: str | None, definition: str | None, namespace_format: str | None) -> str | None:
    """The namespace the destination receives (``NamespacingMapper.transformNamespace``)."""
    kind = (definition or "source").lower().replace("_", "")
    if kind == "destination":
        return None
    if kind == "customformat":
        if namespace_format is None or not namespace_format.strip():
            return None
        source = namespace if namespace is not None and namespace.strip() else ""
        result = namespace_format.replace("${SOURCE_NAMESPACE}", source)
        return result if result.strip() else None
    return namespace


@dataclass(frozen=True)
class StreamIdentity:
    """One connection stream as the source names it, as the destination receives it, and its bronze folder."""

    name: str  # the source's stream name (what the Airbyte UI shows)
    namespace: str | None  # the source's namespace
    destination_name: str  # prefix + name: the stream of manifests, events and the silver table
    destination_namespace: str | None
    folder: str  # airbyte/<source>/<folder>/

    @property
    def prefixed(self) -> bool:
        return self.destination_name != self.name

    def stats_keys(self) -> list[tuple[str, str | None]]:
        """Where Airbyte reports this stream's numbers, most likely first: source name with and without its
        namespace, then (servers before v0.50.24) the destination name with and without its namespace."""
        keys = [(self.name, self.namespace), (self.name, None)]
        if self.prefixed:
            keys += [(self.destination_name, self.destination_namespace), (self.destination_name, None)]
        return list(dict.fromkeys(keys))


def stream_identity(
    name: str,
    namespace: str | None,
    prefix: str | None = None,
    namespace_definition: str | None = None,
    namespace_format: str | None = None,
) -> StreamIdentity:
    """The identity of one connection stream (ConfigError when its name would escape the layout)."""
    received = destination_name(name, prefix)
    return StreamIdentity(
        name=name,
        namespace=namespace,
        destination_name=received,
        destination_namespace=destination_namespace(namespace, namespace_definition, namespace_format),
        folder=safe_stream_dir(received),
    )


def check_folders(identities: Iterable[StreamIdentity], where: str) -> None:
    """Refuse two streams that would write into one bronze folder (exit 2, naming both)."""
    seen: dict[str, StreamIdentity] = {}
    for identity in identities:
        other = seen.setdefault(identity.folder, identity)
        if other is not identity:
            raise ConfigError(
                f"{where}: streams {_label(other)} and {_label(identity)} would both be written to the bronze "
                f"folder {identity.folder!r} (Airbyte's S3 destination makes names S3-safe and this project's "
                "path format has no namespace folder): rename one, or deselect one, in the connection"
            )


def _label(identity: StreamIdentity) -> str:
    where = f"{identity.namespace}." if identity.namespace else ""
    return repr(where + identity.destination_name)
