"""A lake root on an S3-compatible server, and the one S3 configuration every client is built from.

``S3Settings`` (endpoint, keys, region, timeout; from the standard ``AWS_*`` variables and
``LAKE_S3_TIMEOUT_SECONDS``) is the only place S3 is configured: the boto3 client (object operations),
pyarrow's ``S3FileSystem`` (Parquet footers and columns with range requests) and delta-rs's storage options
(silver) are all derived from it, so the three stacks always agree. A hung S3 server fails a call within about
the timeout instead of blocking a run: each of a call's ``ATTEMPTS`` tries waits a third of it.

Writes are atomic: a single PUT or a multipart upload, which S3 only shows once it completes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lakehouse_ingest.errors import ConfigError, StorageError
from lakehouse_ingest.lake.storage import LakeStorage, StoredObject, check_key

if TYPE_CHECKING:  # loaded by pyarrow_filesystem(), when a file is read (lake.storage)
    import pyarrow.fs as pafs

_MULTIPART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 60.0
ATTEMPTS = 3  # per call: a dropped connection or a 5xx is tried again, within the call's timeout


@dataclass(frozen=True)
class S3Settings:
    """Endpoint, credentials, region and timeout of the S3 server (the standard AWS variables, so MinIO works
    unchanged); every S3 client of the project is derived from one of these."""

    endpoint_url: str | None
    access_key: str | None
    secret_key: str | None
    region: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def __repr__(self) -> str:
        return f"S3Settings(endpoint_url={self.endpoint_url!r}, region={self.region!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        """From ``AWS_ENDPOINT_URL[_S3]``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` and
        ``LAKE_S3_TIMEOUT_SECONDS``."""
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
            raise ConfigError("AWS_ENDPOINT_URL must start with http:// or https://")
        return cls(
            endpoint_url=endpoint,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            timeout_seconds=_timeout(env.get("LAKE_S3_TIMEOUT_SECONDS")),
        )

    @property
    def attempt_seconds(self) -> float:
        """How long one try of a call may wait (a call makes at most ``ATTEMPTS`` tries)."""
        return self.timeout_seconds / ATTEMPTS

    def boto3_client(self) -> Any:
        """The process's boto3 S3 client for these settings (thread-safe; building one costs ~0.1 s of CPU)."""
        with _boto3_lock:
            if self not in _boto3_clients:
                import boto3
                from botocore.config import Config

                _boto3_clients[self] = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    region_name=self.region,
                    config=Config(
                        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
                        s3={"addressing_style": "path"},
                        max_pool_connections=50,
                        connect_timeout=self.attempt_seconds,
                        read_timeout=self.attempt_seconds,
                    ),
                )
            return _boto3_clients[self]

    def pyarrow_filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow S3 filesystem for Parquet reads (range requests: footers without downloading files)."""
        import pyarrow.fs as pafs

        endpoint = urlsplit(self.endpoint_url) if self.endpoint_url else None
        return pafs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            connect_timeout=self.attempt_seconds,
            request_timeout=self.attempt_seconds,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS),
        )

    def delta_options(self) -> dict[str, str]:
        """delta-rs storage options (endpoint, keys, plain HTTP for MinIO on a LAN, timeouts)."""
        seconds = max(int(self.attempt_seconds), 1)
        options = {
            "AWS_REGION": self.region,
            "timeout": f"{seconds}s",
            "connect_timeout": f"{seconds}s",
            "max_retries": str(ATTEMPTS - 1),
            "retry_timeout": f"{max(int(self.timeout_seconds), 1)}s",
        }
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if urlsplit(self.endpoint_url).scheme == "http":
                options["AWS_ALLOW_HTTP"] = "true"
        if self.access_key and self.secret_key:
            options["AWS_ACCESS_KEY_ID"] = self.access_key
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return options


def _timeout(value: str | None) -> float:
    if not value:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(f"LAKE_S3_TIMEOUT_SECONDS must be a positive number of seconds, got {value!r}")
    return seconds


_boto3_clients: dict[S3Settings, Any] = {}
_boto3_lock = threading.Lock()


class S3Storage(LakeStorage):
    """A bucket and optional prefix on an S3-compatible server."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client: Any = None
        self._fs: pafs.S3FileSystem | None = None

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def client(self) -> Any:
        """The boto3 S3 client for these settings (shared: building one costs ~0.1 s of CPU)."""
        if self._client is None:
            self._client = self.settings.boto3_client()
        return self._client

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        with self._errors("read", key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self.client.exceptions.NoSuchKey as exc:
                raise FileNotFoundError(self.url_for(key)) from exc
            body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise StorageError(f"cannot read {self.url_for(key)}: {_client_error(exc)}") from exc
        return True

    def list(self, prefix: str) -> list[StoredObject]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix.strip("/") else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        found: list[StoredObject] = []
        with self._errors("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):  # folder marker
                        continue
                    found.append(StoredObject(key[strip:], int(item["Size"])))
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def publish_file(self, local_path: Path, key: str) -> int:
        from boto3.s3.transfer import TransferConfig

        size = local_path.stat().st_size
        config = TransferConfig(multipart_threshold=_MULTIPART_THRESHOLD, max_concurrency=4)
        with self._errors("upload", key):
            self.client.upload_file(str(local_path), self.bucket, self._key(key), Config=config)
        local_path.unlink(missing_ok=True)
        return size

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        if self._fs is None:
            self._fs = self.settings.pyarrow_filesystem()
        root = f"{self.bucket}/{self.prefix}".rstrip("/")
        return self._fs, root

    def delta_options(self) -> dict[str, str]:
        return self.settings.delta_options()

    def check_reachable(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            where = self.settings.endpoint_url or "AWS"
            if code in {"404", "NoSuchBucket", "NotFound"}:
                raise ConfigError(f"bucket {self.bucket!r} does not exist at {where} ({self.uri})") from exc
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise ConfigError(f"the S3 key is refused for bucket {self.bucket!r} at {where}: {code}") from exc
            raise StorageError(f"cannot reach {self.uri}: {_client_error(exc)}") from exc
        except (BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise StorageError(f"cannot reach {self.uri}: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._fs = None
        self._client = None

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            raise StorageError(f"cannot {action} {self.url_for(key)}: {_client_error(exc)}") from exc
        except (BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise StorageError(f"cannot {action} {self.url_for(key)}: {type(exc).__name__}") from exc


def _client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()


def finalize_s3() -> None:
    """Shut pyarrow's S3 subsystem down before interpreter exit (apache/arrow#41087 abort); without pyarrow's
    filesystems loaded there is none to shut down, and pyarrow is not loaded for it."""
    import gc

    with _boto3_lock:
        _boto3_clients.clear()
    gc.collect()
    if "pyarrow.fs" in sys.modules:
        import pyarrow.fs as pafs

        with contextlib.suppress(Exception):
            pafs.finalize_s3()
