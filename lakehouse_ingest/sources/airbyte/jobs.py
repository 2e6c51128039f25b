"""Airbyte jobs as typed records, parsed on arrival: a job, its attempts, their per-stream stats and failures.

Both API families map onto the same ``Job``: the Config API gives attempts with per-stream stats and failure
summaries, the public API only totals. Only ``succeeded``, ``failed`` and ``cancelled`` are terminal;
``pending``, ``queued`` (servers after v2.0 and Cloud), ``running``, ``incomplete`` and any status this code
does not know yet are "keep waiting" (``JobStatus.UNKNOWN`` keeps the raw value for the logs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lakehouse_ingest.lake.names import stream_key


class JobStatus(StrEnum):
    """Airbyte job statuses (JobStatus / JobStatusEnum), plus UNKNOWN for anything newer."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: object) -> JobStatus:
        """The status for a raw value (case-insensitive); UNKNOWN when it is not one we know."""
        try:
            return cls(str(raw).lower())
        except ValueError:
            return cls.UNKNOWN


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# What jobs/list is asked for when looking for a connection's running job.
NON_TERMINAL_STATUSES = ("pending", "running", "incomplete")


@dataclass(frozen=True)
class StreamStats:
    """What one stream moved in one attempt (or summed over a job's attempts)."""

    stream: str
    namespace: str | None = None
    records_emitted: int = 0
    records_committed: int = 0
    bytes_emitted: int = 0
    bytes_committed: int = 0

    def plus(self, other: StreamStats) -> StreamStats:
        """Both attempts' numbers added (a failed attempt's committed records stay in the destination)."""
        return StreamStats(
            self.stream,
            self.namespace,
            self.records_emitted + other.records_emitted,
            self.records_committed + other.records_committed,
            self.bytes_emitted + other.bytes_emitted,
            self.bytes_committed + other.bytes_committed,
        )


@dataclass(frozen=True)
class Failure:
    """One FailureReason of an attempt's failureSummary."""

    origin: str | None
    type: str | None
    message: str

    def __str__(self) -> str:
        where = "/".join(p for p in (self.origin, self.type) if p)
        return f"[{where}] {self.message}" if where else self.message


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job (``number`` is Airbyte's 0-based attempt id)."""

    number: int
    status: str
    streams: tuple[StreamStats, ...] = ()
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True)
class Job:
    """A sync job as the server last described it."""

    id: int
    connection_id: str
    status: JobStatus
    raw_status: str
    created_at: datetime
    attempts: tuple[Attempt, ...] = ()
    records_committed: int | None = None
    bytes_committed: int | None = None

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self.status in TERMINAL_STATUSES

    @property
    def stream_stats(self) -> dict[str, StreamStats]:
        """Per-stream numbers summed over all attempts (empty when the API gives none)."""
        totals: dict[str, StreamStats] = {}
        for attempt in self.attempts:
            for stats in attempt.streams:
                key = stream_key(stats.stream, stats.namespace)
                totals[key] = totals[key].plus(stats) if key in totals else stats
        return totals

    @property
    def failures(self) -> tuple[Failure, ...]:
        """The last attempt's failure summary."""
        return self.attempts[-1].failures if self.attempts else ()

    @classmethod
    def from_config_api(cls, info: dict[str, Any]) -> Job:
        """From a Config API JobInfoRead or JobWithAttemptsRead (``{"job": ..., "attempts": [...]}``)."""
        job = info["job"]
        attempts = tuple(_attempt(a.get("attempt", a)) for a in info.get("attempts") or [])
        stats = job.get("aggregatedStats") or {}
        return cls(
            id=int(job["id"]),
            connection_id=str(job.get("configId", "")),
            status=JobStatus.parse(job.get("status")),
            raw_status=str(job.get("status")),
            created_at=datetime.fromtimestamp(int(job.get("createdAt") or 0), UTC),
            attempts=attempts,
            records_committed=stats.get("recordsCommitted"),
            bytes_committed=stats.get("bytesCommitted"),
        )

    @classmethod
    def from_public_api(cls, job: dict[str, Any]) -> Job:
        """From a public API JobResponse (totals only: that API has no per-stream stats)."""
        return cls(
            id=int(job["jobId"]),
            connection_id=str(job.get("connectionId", "")),
            status=JobStatus.parse(job.get("status")),
            raw_status=str(job.get("status")),
            created_at=_iso(job.get("startTime")),
            records_committed=job.get("rowsSynced"),
            bytes_committed=job.get("bytesSynced"),
        )


def _attempt(raw: dict[str, Any]) -> Attempt:
    streams = tuple(
        StreamStats(
            stream=str(s.get("streamName")),
            namespace=s.get("streamNamespace"),
            records_emitted=int((s.get("stats") or {}).get("recordsEmitted") or 0),
            records_committed=int((s.get("stats") or {}).get("recordsCommitted") or 0),
            bytes_emitted=int((s.get("stats") or {}).get("bytesEmitted") or 0),
            bytes_committed=int((s.get("stats") or {}).get("bytesCommitted") or 0),
        )
        for s in raw.get("streamStats") or []
    )
    failures = tuple(
        Failure(
            f.get("failureOrigin"),
            f.get("failureType"),
            str(f.get("externalMessage") or f.get("internalMessage") or ""),
        )
        for f in (raw.get("failureSummary") or {}).get("failures") or []
    )
    return Attempt(int(raw.get("id") or 0), str(raw.get("status", "")), streams, failures)


def _iso(value: object) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.fromtimestamp(0, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
