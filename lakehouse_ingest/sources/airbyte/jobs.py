"""Airbyte jobs as typed records, parsed on arrival: a job, its attempts, their per-stream stats and failures.

Both API families map onto the same ``Job``: the Config API gives attempts with per-stream stats and failure
summaries, the public API only totals. Which counts a server sends differs by endpoint and version (airbyte-platform
``airbyte-commons-server/.../converters/JobConverter.kt`` and ``handlers/helpers/StatsAggregationHelper.kt``):
attempts' ``streamStats`` carry no ``streamNamespace`` in ``jobs/get`` and ``jobs/get_without_logs`` but do in
``jobs/list``; ``streamAggregatedStats`` has it; a job whose per-stream stats were never persisted shows all-zero
``aggregatedStats`` and only the attempts' ``totalStats`` / legacy ``recordsSynced``. Timestamps are epoch seconds
on the Config API and ISO strings on the public API; both are accepted anywhere. Nulls and absent fields are the
same. Only ``succeeded``, ``failed`` and ``cancelled`` are terminal;
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
    """One attempt of a job (``number`` is Airbyte's 0-based attempt id, or its position when a payload has none).

    ``committed`` is the attempt's total: ``totalStats.recordsCommitted``, else the legacy ``recordsSynced``
    (records committed since platform v1.x; records emitted on 0.x servers).
    """

    number: int
    status: str
    streams: tuple[StreamStats, ...] = ()
    failures: tuple[Failure, ...] = ()
    committed: int | None = None
    committed_from: str = ""


@dataclass(frozen=True)
class Job:
    """A sync job as the server last described it."""

    id: int
    connection_id: str
    status: JobStatus
    raw_status: str
    created_at: datetime
    attempts: tuple[Attempt, ...] = ()
    records_committed: int | None = None  # the job's total, when the server reports one (see ``committed_total``)
    bytes_committed: int | None = None
    config_type: str = "sync"  # sync, refresh, reset_connection, clear (public API: sync, refresh, reset, clear)
    updated_at: datetime | None = None  # the last change (the end, once terminal)
    aggregated_streams: tuple[StreamStats, ...] = ()  # streamAggregatedStats (with namespaces)
    totals_from: str = ""  # where ``records_committed`` comes from

    @property
    def writes_data(self) -> bool:
        """A sync or a refresh: a job that reads the source and writes into bronze (a reset or clear does not)."""
        return self.config_type in ("sync", "refresh")

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self.status in TERMINAL_STATUSES

    @property
    def stream_stats(self) -> dict[str, StreamStats]:
        """Per-stream numbers summed over all attempts (a failed attempt's committed records stay in bronze), by
        ``namespace.name`` as the server keyed them; the aggregated stats when the attempts carry none."""
        totals: dict[str, StreamStats] = {}
        for attempt in self.attempts:
            for stats in attempt.streams:
                key = stream_key(stats.stream, stats.namespace)
                totals[key] = totals[key].plus(stats) if key in totals else stats
        if not totals:
            totals = {stream_key(s.stream, s.namespace): s for s in self.aggregated_streams}
        return totals

    @property
    def committed_total(self) -> tuple[int, str] | None:
        """The records the job committed across its streams, and where the number comes from; None when the
        server reported no count at all."""
        if self.records_committed is not None:
            return self.records_committed, self.totals_from
        counted = [a for a in self.attempts if a.committed is not None]
        if not counted:
            return None
        sources = sorted({a.committed_from for a in counted})
        return sum(a.committed or 0 for a in counted), f"attempts' {' / '.join(sources)}"

    @property
    def failures(self) -> tuple[Failure, ...]:
        """The last attempt's failure summary."""
        return self.attempts[-1].failures if self.attempts else ()

    @classmethod
    def from_config_api(cls, info: dict[str, Any]) -> Job:
        """From a Config API JobInfoRead or JobWithAttemptsRead (``{"job": ..., "attempts": [...]}``)."""
        job = info["job"]
        attempts = tuple(
            _attempt(item.get("attempt", item), position) for position, item in enumerate(info.get("attempts") or [])
        )
        aggregated = tuple(_aggregated(s) for s in job.get("streamAggregatedStats") or [])
        totals = job.get("aggregatedStats") or {}
        # All-zero aggregates over no stream mean "no per-stream stats persisted", not "committed nothing".
        counted = aggregated or any(totals.get(k) for k in ("recordsEmitted", "recordsCommitted"))
        return cls(
            id=int(job["id"]),
            connection_id=str(job.get("configId") or ""),
            status=JobStatus.parse(job.get("status")),
            raw_status=str(job.get("status")),
            created_at=parse_time(job.get("createdAt")),
            attempts=attempts,
            records_committed=_int(totals.get("recordsCommitted")) if counted else None,
            bytes_committed=_int(totals.get("bytesCommitted")) if counted else None,
            config_type=str(job.get("configType") or "sync"),
            updated_at=parse_time(job["updatedAt"]) if job.get("updatedAt") is not None else None,
            aggregated_streams=aggregated,
            totals_from="aggregatedStats.recordsCommitted",
        )

    @classmethod
    def from_public_api(cls, job: dict[str, Any]) -> Job:
        """From a public API JobResponse (totals only: that API has no per-stream stats)."""
        job_type = str(job.get("jobType") or "sync")
        return cls(
            id=int(job["jobId"]),
            connection_id=str(job.get("connectionId") or ""),
            status=JobStatus.parse(job.get("status")),
            raw_status=str(job.get("status")),
            created_at=parse_time(job.get("startTime")),
            records_committed=_int(job.get("rowsSynced")),
            bytes_committed=_int(job.get("bytesSynced")),
            config_type="reset_connection" if job_type == "reset" else job_type,
            updated_at=parse_time(job["lastUpdatedAt"]) if job.get("lastUpdatedAt") else None,
            totals_from="rowsSynced",
        )


def _stats(stream: str, namespace: str | None, counts: dict[str, Any]) -> StreamStats:
    return StreamStats(
        stream=stream,
        namespace=namespace or None,
        records_emitted=_int(counts.get("recordsEmitted")) or 0,
        records_committed=_int(counts.get("recordsCommitted")) or 0,
        bytes_emitted=_int(counts.get("bytesEmitted")) or 0,
        bytes_committed=_int(counts.get("bytesCommitted")) or 0,
    )


def _aggregated(raw: dict[str, Any]) -> StreamStats:
    """One ``streamAggregatedStats`` entry (its counts sit beside the names)."""
    return _stats(str(raw["streamName"]), raw.get("streamNamespace"), raw)


def _attempt(raw: dict[str, Any], position: int) -> Attempt:
    streams = tuple(
        _stats(str(s["streamName"]), s.get("streamNamespace"), s.get("stats") or {})
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
    total = _int((raw.get("totalStats") or {}).get("recordsCommitted"))
    synced = _int(raw.get("recordsSynced"))
    committed, source = (total, "totalStats.recordsCommitted") if total is not None else (synced, "recordsSynced")
    number = raw.get("id")
    return Attempt(
        int(number) if number is not None else position,
        str(raw.get("status") or ""),
        streams,
        failures,
        committed,
        source if committed is not None else "",
    )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_time(value: object) -> datetime:
    """A timestamp as either API sends it: epoch seconds (Config API) or an ISO string (public API, e.g.
    ``2025-01-15T00:00Z`` with seconds omitted, or ``2023-03-25 01:30:50+00:00``); the epoch when absent."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 10**11 else value, UTC)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)
