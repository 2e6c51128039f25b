"""What happened to each stream of a run, as a closed set of statuses, and the report row of each.

The statuses are what the run summary, the table artifact and the CLI print (their values are the strings
earlier versions wrote, so dashboards and scripts that read them keep working).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class StreamStatus(StrEnum):
    """The outcome of one stream (or, with stream ``*``, of a whole source) in a bronze run."""

    HANDED_OFF = "handed_off"  # validated, manifest published, event emitted
    SKIPPED = "skipped"  # the source's min_interval since its last successful sync has not passed
    SUPERSEDED = "superseded"  # an older full-refresh snapshot a newer succeeded job replaces
    PARTIAL_SNAPSHOT = "partial_snapshot"  # part of a full refresh of a job that did not succeed
    FAILED_VALIDATION = "failed_validation"  # a check failed: quarantined
    HANDOFF_FAILED = "handoff_failed"  # validated, but the manifest could not be published
    ERROR = "error"  # the lake or Airbyte could not be read; the next run tries again
    SYNC_FAILED = "sync_failed"  # the connector or the Airbyte job failed
    PLAN_FAILED = "plan_failed"  # install, check, discover or the connection lookup failed
    STATE_COMMIT_FAILED = "state_commit_failed"  # handed off, but the connector state was not saved

    @property
    def done(self) -> bool:
        """Nothing is left to do for this stream: handed off, or not to be handed off on purpose."""
        return self in _DONE

    @property
    def retry_later(self) -> bool:
        """A transient failure after the data was proven: the next run must try this job again."""
        return self in (StreamStatus.ERROR, StreamStatus.HANDOFF_FAILED)


_DONE = frozenset(
    {StreamStatus.HANDED_OFF, StreamStatus.SKIPPED, StreamStatus.SUPERSEDED, StreamStatus.PARTIAL_SNAPSHOT}
)
WHOLE_SOURCE = "*"


@dataclass
class StreamReport:
    """One row of the run summary (and of the table artifact)."""

    source: str
    stream: str
    status: StreamStatus
    rows: int = 0
    files: int = 0
    bytes: int = 0
    checks: str = ""
    detail: str = ""
    reconciliation: str = ""  # what the row count was proven against (the row_count check's detail)
    bronze: str = ""
    silver: str = ""
    manifest: str = ""  # where the batch's manifest was published (handed off only)

    @property
    def name(self) -> str:
        """``source.stream``, or the source alone for a report about a whole source."""
        return self.source if self.stream == WHOLE_SOURCE else f"{self.source}.{self.stream}"

    def as_row(self) -> dict[str, Any]:
        """The artifact/table row (plain values): status and checks first, where a narrow window shows them."""
        row = asdict(self)
        row["status"] = self.status.value
        del row["manifest"]
        first = ("status", "checks", "source", "stream", "detail")
        return {key: row[key] for key in (*first, *(k for k in row if k not in first))}


def source_report(source: str, status: StreamStatus, detail: str) -> StreamReport:
    """A report about a whole source (stream ``*``): skipped, or failed before any stream was known."""
    return StreamReport(source, WHOLE_SOURCE, status, detail=detail)


class MergeStatus(StrEnum):
    """The outcome of one batch in a silver run."""

    MERGED = "merged"  # applied to its Delta table in this run
    ALREADY_APPLIED = "already_applied"  # applied (or skipped) before: exactly once
    SKIPPED_STALE = "skipped_stale"  # older than the table's full-refresh snapshot: recorded, never applied
    FAILED = "failed"  # could not be merged (or an earlier batch of its stream could not)
