"""What the fake Airbyte knows: its options, its objects (workspaces, connections, sources, jobs, attempts) and the
plans tests make for it (attempt outcomes, stuck jobs, injected faults, tampered replies), behind one lock.

Everything here is plain data shared by the job state machine (:mod:`support.fake_airbyte.job_machine`), the
route handlers and the test-facing facade (:mod:`support.fake_airbyte.server`): the lock is one ``RLock`` that
the HTTP thread, the ticker thread and the test thread all take.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from support.fake_airbyte.naming import StreamNames
from support.openapi_check import CONFIG_PREFIX, OpenApiChecker

DEFAULT_ORGANIZATION_ID = "00000000-0000-0000-0000-000000000000"  # OSS default organization (abctl)
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
S3_DEFINITION_ID = "4816b78f-1489-44c1-9060-4b19d5fa9362"  # destination-s3's definition id (contract §4.0)
FAKER_DEFINITION_ID = "dfd88b22-b603-4c3d-aad7-3701784586b1"
# The schema every fake stream declares (and airbyte_s3_writer writes).
STREAM_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
S3_SECRETS = ("access_key_id", "secret_access_key")
# Config API operations that change configuration (provisioning tests count them).
WRITE_OPERATIONS = frozenset(
    f"{CONFIG_PREFIX}/{name}"
    for name in (
        "sources/create",
        "sources/update",
        "destinations/create",
        "destinations/update",
        "connections/create",
        "connections/update",
    )
)

Outcome = str | dict[str, Any]
Writer = Callable[["FakeJob", "FakeConnection"], dict[str, int]]
AuthMode = Literal["none", "basic", "bearer", "client_credentials"]
ErrorStyle = Literal["v0", "v1", "head"]
# How a server generation reports a job's counts (see payloads.py; research rule 4):
# current: per-stream stats by source name (no prefix), recordsSynced = committed (servers >= v1.4);
# legacy_totals: attempts carry only recordsSynced/bytesSynced/totalStats, aggregates zero (stats never persisted);
# prefixed: per-stream stats under the prefixed name and mapped namespace, no aggregates (servers <= v0.50.21);
# none: no count at all (aggregates zero, nothing on the attempts).
StatsShape = Literal["current", "legacy_totals", "prefixed", "none"]
STATS_SHAPES: frozenset[str] = frozenset({"current", "legacy_totals", "prefixed", "none"})
# Job types that write to the destination (airbyte-platform Job.kt SYNC_REPLICATION_TYPES).
REPLICATION_TYPES = frozenset({"sync", "refresh"})


@dataclass
class FakeOptions:
    """How the fake behaves (the :class:`~support.fake_airbyte.server.FakeAirbyte` constructor's arguments).

    One instance is shared by every part of the fake and read at use time, so a test that changes an option on
    the facade changes it everywhere.
    """

    auth: AuthMode
    username: str
    password: str
    token: str
    client_id: str
    client_secret: str
    token_ttl_seconds: float
    token_expires_in: int | None
    job_seconds: float
    queued_seconds: float
    pending_seconds: float
    retry_delay_seconds: float
    records_per_stream: int
    workspaces_list_removed: bool
    writer: Writer | None
    error_style: ErrorStyle
    checker: OpenApiChecker
    actor_page_size: int | None
    stats_shape: StatsShape = "current"
    token_status: int = 200  # anything else is not what Airbyte answers (research rule 6): see auth.py


# -- Airbyte's objects -----------------------------------------------------------------------------------------------
@dataclass
class FakeWorkspace:
    workspace_id: str
    name: str
    organization_id: str = DEFAULT_ORGANIZATION_ID
    customer_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tombstone: bool = False


@dataclass
class FakeConnection:
    connection_id: str
    name: str
    workspace_id: str
    status: str
    streams: list[str]
    source_name: str
    source_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    destination_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    # Set for connections created through the API: the stored syncCatalog streams and settings.
    catalog: list[dict[str, Any]] | None = None
    namespace_definition: str = "customformat"
    namespace_format: str | None = None  # as stored (absent from reads when None)
    prefix: str = ""
    schedule_type: str = "manual"
    # For connections added by a test (no stored catalog): per stream, its source namespace, (syncMode,
    # destinationSyncMode), primary key and cursor field; streams not listed keep the defaults.
    stream_namespaces: dict[str, str] = field(default_factory=dict)
    sync_modes: dict[str, tuple[str, str]] = field(default_factory=dict)
    primary_keys: dict[str, list[list[str]]] = field(default_factory=dict)
    cursor_fields: dict[str, list[str]] = field(default_factory=dict)
    stats_shape: StatsShape | None = None  # None: the fake's
    source_catalog_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempt_ids: bool = True  # False: jobs/get attempts come without their id (a fixture shape, injected)


@dataclass
class FakeStream:
    """A stream a fake source discovers."""

    name: str
    supported_sync_modes: tuple[str, ...] = ("full_refresh", "incremental")
    source_defined_cursor: bool = False
    default_cursor_field: tuple[str, ...] = ("updated_at",)
    source_defined_primary_key: tuple[tuple[str, ...], ...] = (("id",),)
    namespace: str | None = None


def fake_stream(stream: str | FakeStream) -> FakeStream:
    """A stream given by name (with the defaults) or as a :class:`FakeStream`."""
    return stream if isinstance(stream, FakeStream) else FakeStream(stream)


@dataclass
class FakeDefinition:
    """A source or destination definition; ``secrets`` are the config keys read back masked."""

    definition_id: str
    name: str
    docker_repository: str
    docker_image_tag: str
    secrets: tuple[str, ...] = ()
    streams: list[FakeStream] = field(default_factory=list)  # what a source of this definition discovers


@dataclass
class FakeActor:
    """A source or destination (``config`` holds the secrets in clear; reads mask them)."""

    actor_id: str
    name: str
    workspace_id: str
    definition_id: str
    config: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    streams: list[FakeStream] = field(default_factory=list)  # sources: what discover returns
    discover_error: str | None = None


@dataclass
class FakeAttempt:
    """One attempt; ``id`` is the 0-based attempt number, as Airbyte reports it."""

    id: int
    created_at: float
    planned_end: float  # math.inf while stuck
    outcome: Outcome
    status: str = "running"  # running | failed | succeeded
    updated_at: float = 0.0
    ended_at: float | None = None
    failure: dict[str, Any] | None = None
    stream_stats: dict[str, dict[str, int]] = field(default_factory=dict)  # final stats, once ended
    log_lines: list[str] = field(default_factory=list)
    # Whether the attempt ended with an output (its standardSyncSummary): a cancelled one has none, so only the
    # stats table (jobs/list, the aggregates) knows what it moved.
    has_output: bool = True


@dataclass
class FakeJob:
    id: int
    connection_id: str
    config_type: str  # sync | reset_connection | refresh
    streams: list[str]  # the source's stream names of the configured catalog
    created_at: float
    outcomes: list[Outcome]
    stuck: bool = False
    status: str = "pending"
    updated_at: float = 0.0
    started_at: float | None = None  # first time the job went running
    phase_since: float = 0.0  # when the current status began
    attempts: list[FakeAttempt] = field(default_factory=list)
    cancelled: bool = False
    writer_state: str | None = None  # None | "due" | "running" | "done"
    writer_calls: int = 0
    writer_error: str | None = None
    names: dict[str, StreamNames] = field(default_factory=dict)  # by source name, as the job was created
    run_seconds: float | None = None  # an attempt's duration (default: options.job_seconds)

    @property
    def replicates(self) -> bool:
        """A job that writes to the destination (sync, refresh) rather than clearing it."""
        return self.config_type in REPLICATION_TYPES

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def records_committed(self) -> dict[str, int]:
        """Committed records per stream, summed over the ended attempts (a failed one may have committed some)."""
        totals: dict[str, int] = {}
        for attempt in self.attempts:
            if attempt.status in ("succeeded", "failed"):
                for name, stats in attempt.stream_stats.items():
                    totals[name] = totals.get(name, 0) + stats["recordsCommitted"]
        return totals if self.terminal else {}


# -- what the fake saw, and what tests planned ----------------------------------------------------------------------
@dataclass
class RecordedRequest:
    """One HTTP exchange as the fake saw it (headers raw, Authorization included)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any  # parsed JSON body, or the fields of a form-encoded body; None without a body
    body: bytes
    started: float  # time.time()
    ended: float = 0.0
    status: int = 0
    response_json: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    injected: bool = False  # answered by fail_next()
    client: tuple[str, int] | None = None  # (host, port) of the client's TCP connection

    @property
    def duration(self) -> float:
        return self.ended - self.started


@dataclass
class Fault:
    """The next ``remaining`` requests matching ``method`` and the path ``suffix`` get ``status`` (fail_next)."""

    method: str
    suffix: str
    status: int
    remaining: float  # math.inf: until cleared (persistent_failure)
    retry_after: float | None
    body: dict[str, Any] | None


@dataclass
class Tamper:
    """The next reply to ``method`` and the path ``suffix`` goes through ``mutate`` (tamper_next)."""

    method: str
    suffix: str
    mutate: Callable[[Any], Any]


@dataclass
class AfterPlan:
    """The next ``remaining`` requests matching one of ``routes`` (method, path suffix) run their handler, then
    get this reply instead of the handler's (empty_reply_next, fail_trigger_after_create); ``created_only``: only
    when the handler answered 200 (a trigger that created a job)."""

    routes: tuple[tuple[str, str], ...]
    status: int
    body: Any
    content_type: str | None
    remaining: int
    created_only: bool = False


@dataclass
class StatusReport:
    """The next ``remaining`` reads of a job show ``raw`` as its status (report_status); ``job_id`` None until
    the connection's next job exists."""

    connection_id: str
    job_id: int | None
    raw: str
    remaining: int


class FakeState:
    """The fake's objects, the tests' plans and the traffic seen; hold :attr:`lock` to read or change any of it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.workspaces: dict[str, FakeWorkspace] = {}
        self.connections: dict[str, FakeConnection] = {}
        self.sources: dict[str, FakeActor] = {}
        self.destinations: dict[str, FakeActor] = {}
        self.source_definitions: dict[str, FakeDefinition] = {}
        self.destination_definitions: dict[str, FakeDefinition] = {
            S3_DEFINITION_ID: FakeDefinition(S3_DEFINITION_ID, "S3", "airbyte/destination-s3", "1.8.0", S3_SECRETS)
        }
        self.jobs: dict[int, FakeJob] = {}
        self.next_job_id = 1
        # Plans for a connection's next job.
        self.plans: dict[str, list[Outcome]] = {}
        self.stuck: set[str] = set()
        # Plans for the next requests.
        self.faults: list[Fault] = []
        self.tampers: list[Tamper] = []
        self.slow_triggers: list[float] = []
        self.forced_conflicts: list[str] = []
        self.after_plans: list[AfterPlan] = []
        self.status_reports: list[StatusReport] = []
        # Connections listed twice: id -> None (again on the next public page) or the id of another workspace
        # whose listings also return it.
        self.listed_twice: dict[str, str | None] = {}
        # What the fake saw.
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[str] = []
        self.errors: list[str] = []  # crashes of the fake (also in spec_violations) and writer exceptions

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault planned for this request, counted down (and forgotten once used up)."""
        with self.lock:
            fault = next((f for f in self.faults if f.method == method and path.endswith(f.suffix)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
        return fault

    def take_after_plan(self, method: str, path: str, status: int) -> AfterPlan | None:
        """The reply planned to replace the handler's for this request (counted down), if any."""
        with self.lock:
            for plan in self.after_plans:
                if plan.created_only and status != 200:
                    continue
                if any(method == m and path.endswith(suffix) for m, suffix in plan.routes):
                    plan.remaining -= 1
                    if plan.remaining <= 0:
                        self.after_plans.remove(plan)
                    return plan
        return None

    def reported_status(self, job: FakeJob, *, count: bool) -> str | None:
        """The status a planned report shows for the job instead of its own; ``count``: this read uses one up."""
        with self.lock:
            report = next((r for r in self.status_reports if r.job_id == job.id), None)
            if report is None:
                return None
            if count:
                report.remaining -= 1
                if report.remaining <= 0:
                    self.status_reports.remove(report)
            return report.raw

    def take_tamper(self, method: str, path: str) -> Tamper | None:
        """The tampering planned for the reply to this request (used once)."""
        with self.lock:
            tamper = next((t for t in self.tampers if t.method == method and path.endswith(t.suffix)), None)
            if tamper is not None:
                self.tampers.remove(tamper)
        return tamper

    def lookup_job(self, job_id: Any) -> FakeJob | None:
        """The job with this id; None for an unknown id or one that is not an integer (as JSON gave it)."""
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            return None
        return self.jobs.get(job_id)

    def active_job(self, connection_id: str) -> FakeJob | None:
        """The newest job of the connection that has not ended."""
        active = [j for j in self.jobs.values() if j.connection_id == connection_id and not j.terminal]
        return max(active, key=lambda j: (j.created_at, j.id)) if active else None
