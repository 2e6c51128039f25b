"""Opening a lake root from its URI: a directory path, ``file://`` path or ``s3://bucket[/prefix]``."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.lake.s3 import S3Settings, S3Storage
from lakehouse_ingest.lake.storage import LakeStorage, check_key

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


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
