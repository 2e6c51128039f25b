"""Where Airbyte writes: the S3 destination into bronze, one per catalog source.

Destination ``lakehouse-bronze-<source>`` (or ``airbyte.destination_name``), one per source, of the workspace's
``airbyte/destination-s3`` definition: bucket and prefix from ``BRONZE_URI`` (``s3://bucket[/p]``),
``s3_bucket_path: [p/]airbyte/<source>``, ``s3_path_format: ${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_``
and no ``file_name_pattern`` (the default ``{part_number}{format_extension}``), Parquet (SNAPPY). The key of a
file is then ``[p/]airbyte/<source>/<stream>/<YYYY>_<MM>_<DD>_<epoch_ms>_<part>.parquet``: the layout that
:mod:`lakehouse_ingest.sources.platform.job_files` finds by key epoch and sync id. ``${NAMESPACE}`` is
deliberately absent (with it, a source namespace such as ``public`` becomes a folder:
``airbyte/<source>/public/<stream>/``).

Endpoint, keys and region are the ones *Airbyte* uses to reach the bucket (``AIRBYTE_S3_ENDPOINT``,
``AIRBYTE_S3_ACCESS_KEY_ID`` / ``AIRBYTE_S3_SECRET_ACCESS_KEY``, ``AIRBYTE_S3_REGION``; each falls back to its
``AWS_*`` counterpart), never literals. These constants and :class:`S3Target` live apart from the reconciler
because they are the contract with :mod:`~lakehouse_ingest.sources.platform.job_files`: change one, check the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lakehouse_ingest.errors import ConfigError

DESTINATION_PREFIX = "lakehouse-bronze-"
S3_REPOSITORY = "airbyte/destination-s3"
PATH_FORMAT = "${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_"
PARQUET_FORMAT: dict[str, Any] = {"format_type": "Parquet", "compression_codec": "SNAPPY"}
DESTINATION_SECRETS = frozenset({"access_key_id", "secret_access_key"})
# Destination keys this module does not set but that must be absent: they would move or rename the files.
MUST_BE_ABSENT = ("file_name_pattern",)


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
