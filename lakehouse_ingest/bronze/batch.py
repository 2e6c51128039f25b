"""The contract every source produces and bronze validates: one stream batch of one sync.

A batch is what one sync (an embedded read or an Airbyte job) wrote for one stream: its files under
``airbyte/<source>/<stream>/``, how the stream syncs (modes, primary key, cursor), its sync and generation ids,
and how many records the engine or Airbyte counted. Checks prove the files against it, the manifest records
it for silver, a quarantine mark keeps it for a later re-validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.lake.names import stream_key


@dataclass(frozen=True)
class Expected:
    """What a batch's row count is checked against, and who counted it.

    ``rows`` None: nobody reported a count (an Airbyte server that keeps no stats for the job); the catalog's
    ``reconcile`` policy then decides. ``mismatch``: a failure decided before any file is read (a job's total that
    the files of all its streams do not add up to), with both numbers and where each came from.
    """

    rows: int | None
    counted_by: str = "the engine"
    mismatch: str | None = None


@dataclass
class StreamBatch:
    """What one sync wrote for one stream: the unit that is validated and handed to silver."""

    source: str
    stream: str
    namespace: str | None
    sync_id: int
    generation_id: int
    started_at: datetime
    prefix: str
    sync_mode: str
    destination_sync_mode: str
    primary_key: list[list[str]]
    cursor_field: list[str]
    schema: pa.Schema
    records: int = 0  # rows in the batch's files (the embedded engine's count; footers on an Airbyte server)
    files: list[PublishedPart] = field(default_factory=list)
    expected: Expected | None = None  # what ``records`` must equal; None: the engine's own count (``records``)

    @property
    def expectation(self) -> Expected:
        """What the row count is checked against (the engine's count unless another was given)."""
        return self.expected if self.expected is not None else Expected(self.records)

    @property
    def state_key(self) -> str:
        """How STREAM state messages name this stream (``namespace.name`` or ``name``)."""
        return stream_key(self.stream, self.namespace)

    @property
    def bytes(self) -> int:
        """Total size of the batch's files."""
        return sum(f.bytes for f in self.files)

    def description(self) -> dict[str, Any]:
        """What identifies the batch and how it syncs (``lake.documents.BatchDescription``'s fields)."""
        return {
            "source": self.source,
            "stream": self.stream,
            "namespace": self.namespace,
            "sync_id": self.sync_id,
            "generation_id": self.generation_id,
            "started_at": self.started_at,
            "prefix": self.prefix,
            "sync_mode": self.sync_mode,
            "destination_sync_mode": self.destination_sync_mode,
            "primary_key": self.primary_key,
            "cursor_field": self.cursor_field,
        }
