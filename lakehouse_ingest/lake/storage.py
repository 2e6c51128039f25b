"""One storage interface for a lake root: a local directory (``lake.local``) or ``s3://bucket[/prefix]``
(``lake.s3``: MinIO, SeaweedFS, AWS). ``lake.roots`` opens the right one from a URI.

Keys are POSIX paths relative to the root. Every write is atomic: a reader sees a whole object or
none. Listings skip the zero-byte folder-marker keys (``.../``) that MinIO and pyarrow create. Every
failure to reach the storage is a ``StorageError`` (retryable); a missing object is ``FileNotFoundError``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import shutil
import socket
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.processes import process_exists

if TYPE_CHECKING:  # pyarrow loads when a file is read, not with the lake: the CLI opens roots before any read
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MULTIPART_THRESHOLD = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """One object under the root: its key (relative to the root) and size in bytes."""

    key: str
    size: int


@contextlib.contextmanager
def staging_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder under ``parent`` named after this process (``<prefix><pid>~<host>~...``), removed afterwards.

    A process killed while it staged (``kill -9``, an out-of-memory kill) cannot remove its folder, which holds half
    a Parquet part: the next staging folder made under ``parent`` removes those of this host whose process is gone.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in staging_leftovers(parent, prefix):
        shutil.rmtree(leftover, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}~{socket.gethostname()}~", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def staging_leftovers(parent: Path, prefix: str) -> list[Path]:
    """The staging folders under ``parent`` (``staging_folder``) of this host's processes that no longer run."""
    if not parent.is_dir():
        return []
    found = []
    for leftover in sorted(parent.glob(f"{prefix}*~{socket.gethostname()}~*")):
        pid = leftover.name[len(prefix) :].split("~", 1)[0]
        if pid.isdigit() and not process_exists(int(pid)):
            found.append(leftover)
    return found


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
        with staging_folder(*self.staging_location()) as path:
            yield path

    def staging_location(self) -> tuple[Path, str]:
        """Where ``staging_dir`` makes its folders, and their name prefix: ``$TMPDIR/lake-staging-*``."""
        return Path(tempfile.gettempdir()), "lake-staging-"

    def staging_leftovers(self) -> builtins.list[Path]:
        """The staging folders processes of this host left where this storage stages (they died while staging)."""
        return staging_leftovers(*self.staging_location())

    def open_parquet(self, key: str) -> pq.ParquetFile:
        """Open a Parquet object for footer and column reads."""
        import pyarrow.parquet as pq

        fs, root = self.filesystem()
        handle = fs.open_input_file(f"{root}/{check_key(key)}")
        return pq.ParquetFile(handle)

    @abstractmethod
    def check_reachable(self) -> None:
        """Before a run writes anything: ConfigError when the root cannot be used as given (a missing bucket, a
        refused key, a path that is not a writable directory), StorageError when it cannot be reached now."""

    def delta_options(self) -> dict[str, str]:
        """The storage options delta-rs needs to open Delta tables under this root (none for a directory)."""
        return {}

    def close(self) -> None:  # noqa: B027 - a no-op for local storage on purpose
        """Release clients and filesystems (S3 ones must go before pyarrow's S3 finalizer)."""
