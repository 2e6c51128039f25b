"""A lake root in a local directory.

Every write is atomic: write to a hidden temporary file in the same directory, then ``os.replace``. Files
to publish are staged in a hidden folder inside the root, so publishing is a rename on one filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse_ingest.errors import ConfigError, StorageError
from lakehouse_ingest.lake.storage import LakeStorage, StoredObject, check_key, staging_folder

if TYPE_CHECKING:  # loaded by filesystem(), when a file is read (lake.storage)
    import pyarrow.fs as pafs


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
        staging, prefix = self.staging_location()
        try:
            with staging_folder(staging, prefix) as path:
                yield path
        finally:
            with contextlib.suppress(OSError):
                staging.rmdir()

    def staging_location(self) -> tuple[Path, str]:
        """``<root>/.staging/sync-*``."""
        return self.root / ".staging", "sync-"

    def check_reachable(self) -> None:
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{self.root} is not a writable directory (nor can one be made there)")

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), self.root.as_posix()
