"""Every JSON document this project keeps in the lake, as typed models, and the one pair of helpers that
reads and writes them.

Documents (where each lives: ``lake.keys``):

- ``Manifest``       the handoff contract to silver, one per validated stream batch;
- ``Report``         every check of one batch, passed or not;
- ``Quarantine``     a failed batch: its report and what is needed to validate it again;
- ``ConnectorState`` an embedded source's connector state and stream generations;
- ``JobLedgerDoc``   which Airbyte jobs of a platform source were handed off;
- ``LastSuccess``    when a source last synced with every stream handed off (``min_interval``);
- ``SyncOwner``      the process running an embedded sync (so the janitor can tell a dead sync's parts).

The JSON is exactly what earlier versions wrote (same keys, same order, ``indent=2``, ISO timestamps as
``datetime.isoformat()`` gives them), so documents written before and after this module read the same
everywhere. Unknown keys are ignored when reading: a newer writer's additions never break an older reader.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from lakehouse_ingest.errors import DocumentError
from lakehouse_ingest.lake.storage import LakeStorage

# ``datetime.isoformat()`` (``+00:00``), as the documents always carried; pydantic's own JSON would say ``Z``.
IsoDatetime = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")]
MANIFEST_VERSION = 1


class Document(BaseModel):
    """Base of every stored document: unknown keys ignored, fields by name or alias."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    # How the JSON is laid out: sorted keys, or keys moved to the front (as earlier versions wrote them).
    sort_keys: ClassVar[bool] = False
    leading_keys: ClassVar[tuple[str, ...]] = ()
    omitted_when_none: ClassVar[tuple[str, ...]] = ()  # keys added later: absent (as before) when they say nothing

    def to_json(self) -> bytes:
        """The document's bytes in the lake."""
        content = self.model_dump(mode="json", by_alias=True)
        for key in self.omitted_when_none:
            if content.get(key) is None:
                content.pop(key, None)
        if self.leading_keys:
            content = {**{key: content.pop(key) for key in self.leading_keys}, **content}
        return json.dumps(content, indent=2, sort_keys=self.sort_keys).encode()


class FileEntry(Document):
    """One data file of a batch: its key under the bronze root, rows and bytes."""

    key: str
    rows: int
    bytes: int


class ManifestFile(FileEntry):
    """A manifest's file entry also carries the file's full location."""

    url: str


class ColumnEntry(Document):
    """One column of a batch's schema as manifests record it (Arrow type as text)."""

    name: str
    type: str
    nullable: bool


class CheckEntry(Document):
    """One check's outcome; ``file`` names the object at fault when there is one."""

    name: str
    passed: bool
    detail: str
    file: str | None = None


class BatchDescription(Document):
    """What identifies a stream batch and how it syncs (shared by manifests and quarantine marks)."""

    source: str
    stream: str
    namespace: str | None = None
    sync_id: int
    generation_id: int = 0
    started_at: IsoDatetime
    prefix: str
    sync_mode: str
    destination_sync_mode: str
    primary_key: list[list[str]] = Field(default_factory=list)
    cursor_field: list[str] = Field(default_factory=list)


class QuarantinedBatch(BatchDescription):
    """A quarantined batch's description: its record count and files, to validate it again."""

    records: int
    files: list[FileEntry] = Field(default_factory=list)


class Manifest(BatchDescription):
    """``airbyte/<source>/<stream>/_manifests/<sync_id>.json``: a validated batch, complete and proven."""

    manifest_version: int = MANIFEST_VERSION
    validated_at: IsoDatetime
    bronze_root: str
    rows: int
    bytes: int
    files: list[ManifestFile] = Field(default_factory=list)
    columns: list[ColumnEntry] = Field(default_factory=list, alias="schema")
    checks: list[CheckEntry] = Field(default_factory=list)
    # What the batch's row count was proven against (``row_count``'s detail): an Airbyte count and where it came
    # from, or "not reconciled: ..." when Airbyte reported none and the stream's policy let it pass.
    reconciliation: str | None = None

    leading_keys: ClassVar[tuple[str, ...]] = ("manifest_version",)
    omitted_when_none: ClassVar[tuple[str, ...]] = ("reconciliation",)


class Report(Document):
    """``_reports/<sync_id>.json``: every check of one batch (counts only, never data values)."""

    source: str
    stream: str
    sync_id: int
    passed: bool
    failure: str | None = None
    validated_at: IsoDatetime
    rows: int
    files: list[FileEntry] = Field(default_factory=list)
    checks: list[CheckEntry] = Field(default_factory=list)


class Quarantine(Report):
    """``_quarantine/<sync_id>.json``: a failed batch's report and its description (``batch``)."""

    batch: QuarantinedBatch


class ConnectorState(Document):
    """``_state/airbyte/<source>/state.json``: per-stream STATE messages, a GLOBAL/LEGACY one, generations."""

    stream_states: dict[str, dict[str, Any]] = Field(default_factory=dict)
    shared_state: dict[str, Any] | None = None
    generations: dict[str, int] = Field(default_factory=dict)
    last_sync_id: int | None = None

    sort_keys: ClassVar[bool] = True


class JobLedgerDoc(Document):
    """``_state/airbyte/<source>/jobs/<connection_id>.json`` (earlier: ``jobs.json``): every job at or below
    ``watermark`` handed off, and ``done``; ``in_flight``: triggered or attached, not handed off yet."""

    watermark: int
    done: list[int] = Field(default_factory=list)
    server: str | None = None
    connection_id: str | None = None
    watermark_created_at: IsoDatetime | None = None
    in_flight: list[int] | None = None

    omitted_when_none: ClassVar[tuple[str, ...]] = ("server", "connection_id", "watermark_created_at", "in_flight")


class LastSuccess(Document):
    """``_state/airbyte/<source>/last_success.json``: the end of the last fully successful sync."""

    finished_at: IsoDatetime
    sync_id: int | None = None


class SyncOwner(Document):
    """``_state/airbyte/<source>/syncs/<sync_id>.json``: the process that runs an embedded sync, written before its
    first part: the machine (host name, boot id, pid namespace), its pid and when it started (Linux clock ticks);
    whatever of these the platform cannot tell is absent."""

    sync_id: int
    started_at: IsoDatetime
    host: str
    pid: int
    boot_id: str | None = None
    pid_namespace: str | None = None
    process_started: int | None = None

    omitted_when_none: ClassVar[tuple[str, ...]] = ("boot_id", "pid_namespace", "process_started")


D = TypeVar("D", bound=Document)


def read_document(storage: LakeStorage, key: str, model: type[D]) -> D | None:
    """The document at ``key``, or None when there is none; DocumentError naming it when it is damaged."""
    try:
        raw = storage.get_bytes(key)
    except FileNotFoundError:
        return None
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise DocumentError(f"{storage.url_for(key)} is not a valid {model.__name__}: {reason}") from exc


def write_document(storage: LakeStorage, key: str, document: Document) -> str:
    """Write ``document`` at ``key`` atomically (as earlier versions formatted it); returns its location."""
    storage.put_bytes(key, document.to_json())
    return storage.url_for(key)
