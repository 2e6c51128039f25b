"""Bounded-memory Parquet part files for one stream, each published atomically when complete.

Tables arrive in small chunks; they are buffered up to one row group, written to a part file in a
private staging directory, and a part is rolled over at ``max_rows``. Finished parts are published
(rename or S3 upload) so that readers never see half a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_ingest.lake.storage import LakeStorage

ROW_GROUP_ROWS = 100_000


@dataclass(frozen=True)
class PublishedPart:
    """One published Parquet part."""

    key: str
    rows: int
    bytes: int


class PartWriter:
    """Writes one stream's tables into Parquet parts named by ``key_for_part(part_number)``."""

    def __init__(
        self,
        storage: LakeStorage,
        staging: Path,
        schema: pa.Schema,
        key_for_part: Callable[[int], str],
        max_rows: int,
        compression: str,
    ) -> None:
        self.storage = storage
        self.staging = staging
        self.schema = schema
        self.key_for_part = key_for_part
        self.max_rows = max_rows
        self.compression = None if compression == "none" else compression
        self.published: list[PublishedPart] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._part_rows = 0

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``; write a row group once enough rows are pending."""
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= min(ROW_GROUP_ROWS, self.max_rows):
            self._drain()

    def close(self) -> list[PublishedPart]:
        """Write what is pending, publish the last part, and return every published part."""
        self._drain()
        self._finish_part()
        return self.published

    def abort(self) -> None:
        """Drop the unfinished part (published parts are the caller's to remove)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def _drain(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        offset = 0
        while offset < table.num_rows:
            room = self.max_rows - self._part_rows
            piece = table.slice(offset, room)
            self._open_part().write_table(piece, row_group_size=ROW_GROUP_ROWS)
            self._part_rows += piece.num_rows
            offset += piece.num_rows
            if self._part_rows >= self.max_rows:
                self._finish_part()

    def _open_part(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._path = self.staging / f"part-{len(self.published)}.parquet"
            self._writer = pq.ParquetWriter(
                str(self._path), self.schema, compression=self.compression, use_dictionary=True
            )
        return self._writer

    def _finish_part(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        key = self.key_for_part(len(self.published))
        size = self.storage.publish_file(self._path, key)
        self.published.append(PublishedPart(key, self._part_rows, size))
        self._writer, self._path, self._part_rows = None, None, 0
