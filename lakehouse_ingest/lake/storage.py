"""One storage interface for a local directory and ``s3://bucket[/prefix]`` (MinIO, SeaweedFS, AWS).

Keys are POSIX paths relative to the root. Every write is atomic: a reader sees a whole object or
none (local: write to a hidden temporary file in the same directory, then ``os.replace``; S3: a single
PUT or a multipart upload, which S3 only shows once it completes). Listings skip the zero-byte
folder-marker keys (``.../``) that MinIO and pyarrow create.

boto3 does the S3 object operations; pyarrow's filesystems open Parquet files (footers are read with
range requests, no full download). The S3 endpoint and keys come from the standard ``AWS_*`` variables.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lakehouse_ingest.errors import ConfigError, StorageError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MULTIPART_THRESHOLD = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """One object under the root: its key (relative to the root) and size in bytes."""

    key: str
    size: int


def check_key(key: str) -> str:
    """Refuse keys that are absolute, empty or climb out of the root."""
    parts = key.split("/")  # not PurePosixPath(key).parts: it drops "." and "" segments unseen
    if not key or key.startswith("/") or any(p in {"", ".", ".."} for p in parts) or "\\" in key:
        raise ConfigError(f"invalid object key {key!r}")
    return key


class LakeStorage(ABC):
    """A root (directory or bucket prefix) holding objects addressed by relative keys."""

    uri: str

    @abstractmethod
    def url_for(self, key: str) -> str:
        """The full location of ``key`` (``s3://bucket/prefix/key`` or an absolute path)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically (replacing any previous object)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read a whole object; raise FileNotFoundError when it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True when an object exists at ``key``."""

    @abstractmethod
    def list(self, prefix: str) -> list[StoredObject]:
        """All objects under ``prefix`` (recursive, sorted by key), folder markers skipped."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abstractmethod
    def publish_file(self, local_path: Path, key: str) -> int:
        """Atomically move a finished local file to ``key``; returns its size in bytes."""

    @abstractmethod
    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the path of the root inside it, for Parquet reads."""

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """A private local directory for files that are published later; removed afterwards."""
        path = Path(tempfile.mkdtemp(prefix="lake-staging-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def open_parquet(self, key: str) -> pq.ParquetFile:
        """Open a Parquet object for footer and column reads."""
        fs, root = self.filesystem()
        handle = fs.open_input_file(f"{root}/{check_key(key)}")
        return pq.ParquetFile(handle)

    def close(self) -> None:  # noqa: B027 - a no-op for local storage on purpose
        """Release clients and filesystems (S3 ones must go before pyarrow's S3 finalizer)."""


class LocalStorage(LakeStorage):
    """A directory on the local filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def url_for(self, key: str) -> str:
        return str(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[StoredObject]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        found = [
            StoredObject(p.relative_to(self.root).as_posix(), p.stat().st_size)
            for p in base.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        ]
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def publish_file(self, local_path: Path, key: str) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            shutil.move(local_path, temporary)  # a rename when on the same filesystem
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StorageError(f"cannot publish {target}: {exc.strerror or exc}") from exc
        return target.stat().st_size

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """Stage inside the root (hidden) so that publishing is a rename on one filesystem."""
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="sync-", dir=staging))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.rmdir()

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), self.root.as_posix()


_boto3_clients: dict[S3Settings, Any] = {}
_boto3_lock = threading.Lock()


def _boto3_client(settings: S3Settings) -> Any:
    """One thread-safe boto3 client per endpoint and key, built once per process."""
    with _boto3_lock:
        if settings not in _boto3_clients:
            import boto3
            from botocore.config import Config

            _boto3_clients[settings] = boto3.session.Session().client(
                "s3",
                endpoint_url=settings.endpoint_url,
                aws_access_key_id=settings.access_key,
                aws_secret_access_key=settings.secret_key,
                region_name=settings.region,
                config=Config(
                    retries={"max_attempts": 5, "mode": "standard"},
                    s3={"addressing_style": "path"},
                    max_pool_connections=50,
                ),
            )
        return _boto3_clients[settings]


@dataclass(frozen=True)
class S3Settings:
    """Endpoint and credentials from the standard AWS variables (so MinIO works unchanged)."""

    endpoint_url: str | None
    access_key: str | None
    secret_key: str | None
    region: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
            raise ConfigError("AWS_ENDPOINT_URL must start with http:// or https://")
        return cls(
            endpoint_url=endpoint,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )


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
            self._client = _boto3_client(self.settings)
        return self._client

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
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
            endpoint = urlsplit(self.settings.endpoint_url) if self.settings.endpoint_url else None
            self._fs = pafs.S3FileSystem(
                access_key=self.settings.access_key,
                secret_key=self.settings.secret_key,
                region=self.settings.region,
                endpoint_override=endpoint.netloc if endpoint else None,
                scheme=endpoint.scheme if endpoint else "https",
            )
        root = f"{self.bucket}/{self.prefix}".rstrip("/")
        return self._fs, root

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
        except BotoCoreError as exc:
            raise StorageError(f"cannot {action} {self.url_for(key)}: {type(exc).__name__}") from exc


def _client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()


def open_storage(uri: str, env: Mapping[str, str] | None = None) -> LakeStorage:
    """Build the storage for ``uri``: a directory path, ``file://`` path or ``s3://bucket[/prefix]``."""
    if not uri or not uri.strip():
        raise ConfigError("storage URI is empty")
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        if not _BUCKET.fullmatch(parts.netloc or ""):
            raise ConfigError(f"invalid S3 bucket name in {uri!r}")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix)
        if parts.query or parts.fragment:
            raise ConfigError(f"S3 URI must be s3://bucket[/prefix], got {uri!r}")
        return S3Storage(parts.netloc, prefix, S3Settings.from_env(os.environ if env is None else env))
    if parts.scheme == "file":
        return LocalStorage(Path(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise ConfigError(f"unsupported storage URI {uri!r}: use a directory or s3://bucket[/prefix]")
    return LocalStorage(Path(uri))


@contextlib.contextmanager
def opened_storage(uri: str) -> Iterator[LakeStorage]:
    """``open_storage`` for the length of a block, released afterwards."""
    storage = open_storage(uri)
    try:
        yield storage
    finally:
        storage.close()


def finalize_s3() -> None:
    """Shut pyarrow's S3 subsystem down before interpreter exit (apache/arrow#41087 abort)."""
    import gc

    with _boto3_lock:
        _boto3_clients.clear()
    gc.collect()
    with contextlib.suppress(Exception):
        pafs.finalize_s3()
