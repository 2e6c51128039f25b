"""A fake Airbyte server for tests: real HTTP on 127.0.0.1, the Config API and the public API.

It runs a Starlette app under uvicorn in a background thread (one event loop, so hundreds of concurrent
connections are fine) and keeps its state behind one lock that the test thread shares. Jobs move through
Airbyte's statuses in real time, driven by a ticker thread::

    pending → (queued) → running → (incomplete → running)* → succeeded | failed | cancelled

Shapes follow the airbyte-platform v2.0.0 OpenAPI documents and ``shared/reference/airbyte-contract.md``:
epoch-second timestamps (FailureReason.timestamp in ms), 0-based attempt ids, stats only once an attempt ends
(``jobs/list`` shows in-progress numbers), 409 "A sync is already running for: <id>" in the body of several
server versions, the slow ``connections/sync``, Basic / bearer / client-credentials auth and both token
endpoints. Every request and response is checked against the spec (:mod:`support.openapi_check`); problems land
in :attr:`FakeAirbyte.spec_violations`, which tests assert stays empty.

Usage::

    with FakeAirbyte(job_seconds=0.2) as airbyte:
        conn = airbyte.add_connection("faker", streams=["users", "products"])
        httpx.post(airbyte.url + "/api/v1/connections/sync", json={"connectionId": conn})
        ...
        assert airbyte.spec_violations == []
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import math
import secrets
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .openapi_check import CONFIG_PREFIX, PUBLIC_PREFIX, OpenApiChecker, default_checker

if TYPE_CHECKING:
    from .seaweed import S3Endpoint

__all__ = [
    "DEFAULT_ORGANIZATION_ID",
    "S3_DEFINITION_ID",
    "SECRET_MASK",
    "STREAM_JSON_SCHEMA",
    "TERMINAL_STATUSES",
    "WRITE_OPERATIONS",
    "FakeActor",
    "FakeAirbyte",
    "FakeAttempt",
    "FakeConnection",
    "FakeDefinition",
    "FakeJob",
    "FakeStream",
    "FakeWorkspace",
    "RecordedRequest",
    "Writer",
    "airbyte_s3_writer",
]

DEFAULT_ORGANIZATION_ID = "00000000-0000-0000-0000-000000000000"  # OSS default organization (abctl)
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
# The schema every fake stream declares (and airbyte_s3_writer writes).
STREAM_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
BYTES_PER_RECORD = 128
S3_DEFINITION_ID = "4816b78f-1489-44c1-9060-4b19d5fa9362"  # destination-s3's definition id (contract §4.0)
FAKER_DEFINITION_ID = "dfd88b22-b603-4c3d-aad7-3701784586b1"
SECRET_MASK = "**********"  # what Airbyte reads back in place of an airbyte_secret value
S3_SECRETS = ("access_key_id", "secret_access_key")
S3_REQUIRED = ("s3_bucket_name", "s3_bucket_path", "s3_bucket_region", "format")
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
ERRORS_URL = "https://reference.airbyte.com/reference/errors"
PROBLEMS: dict[str, tuple[int, str, str]] = {  # title -> (status, type, detail) as in api-problems.yaml
    "bad-request": (400, f"{ERRORS_URL}#bad-request", "The request could not be understood by the server."),
    "invalid-api-key": (401, f"{ERRORS_URL}#invalid-api-key", "The API key in the Authorization header is invalid."),
    "resource-not-found": (404, f"{ERRORS_URL}#resource-not-found", "The requested resource could not be found."),
    "state-conflict": (409, f"{ERRORS_URL}#409-state-conflict", "State conflict"),
    "try-again-later": (409, f"{ERRORS_URL}#try-again-later", "Please try again later."),
    "unprocessable-entity": (422, f"{ERRORS_URL}#unprocessable-entity", "The body of the request was not understood"),
    "unexpected-problem": (500, ERRORS_URL, "An unexpected problem has occurred."),
}
CONFLICT_CLASSES = {
    "v0": "io.airbyte.server.errors.ValueConflictKnownException",
    "v1": "io.airbyte.commons.server.errors.ValueConflictKnownException",
}
NOT_FOUND_CLASSES = {
    "v0": "io.airbyte.server.errors.IdNotFoundKnownException",
    "v1": "io.airbyte.commons.server.errors.IdNotFoundKnownException",
}
PUBLIC_JOB_TYPES = {"sync": "sync", "reset_connection": "reset", "clear": "clear", "refresh": "refresh"}
CONFIG_TYPES = {public: config for config, public in PUBLIC_JOB_TYPES.items()}

Outcome = str | dict[str, Any]
Writer = Callable[["FakeJob", "FakeConnection"], dict[str, int]]


# -- state ---------------------------------------------------------------------------------------------------------
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
    namespace_format: str | None = None  # None: the source name
    prefix: str = ""
    schedule_type: str = "manual"


@dataclass
class FakeStream:
    """A stream a fake source discovers."""

    name: str
    supported_sync_modes: tuple[str, ...] = ("full_refresh", "incremental")
    source_defined_cursor: bool = False
    default_cursor_field: tuple[str, ...] = ("updated_at",)
    source_defined_primary_key: tuple[tuple[str, ...], ...] = (("id",),)
    namespace: str | None = None


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


@dataclass
class FakeJob:
    id: int
    connection_id: str
    config_type: str  # sync | reset_connection | clear
    streams: list[str]
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
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    validate: bool = True


@dataclass
class _Fault:
    method: str
    suffix: str
    status: int
    remaining: int
    retry_after: float | None
    body: dict[str, Any] | None


@dataclass
class _Tamper:
    method: str
    suffix: str
    mutate: Callable[[Any], Any]


# -- the server ----------------------------------------------------------------------------------------------------
class FakeAirbyte:
    """A fake Airbyte (Config API under ``url + "/api/v1"``, public API under ``url + "/api/public/v1"``).

    Beyond the brief's parameters: ``pending_seconds`` (time a job spends pending), ``retry_delay_seconds``
    (time in "incomplete" between attempts, default ``job_seconds / 2``), ``records_per_stream`` (stats when no
    writer is given), ``error_style`` ("v0" | "v1" | "head": the Config API's 404/409/500 bodies),
    ``token_expires_in`` (the ``expires_in`` the public token endpoint reports, default the real TTL) and
    ``checker`` (an :class:`OpenApiChecker`) and ``actor_page_size`` (``sources/list`` / ``destinations/list``
    answer pages of that size with ``page_size``, followed by ``cursor`` = the last id, as newer servers do).
    """

    def __init__(
        self,
        *,
        auth: Literal["none", "basic", "bearer", "client_credentials"] = "none",
        username: str = "airbyte",
        password: str = "password",  # noqa: S107 - the fake's well-known test credentials
        token: str = "static-token",  # noqa: S107 - the fake's well-known test credentials
        client_id: str = "client-id",
        client_secret: str = "client-secret",  # noqa: S107 - the fake's well-known test credentials
        token_ttl_seconds: float = 180.0,
        job_seconds: float = 1.0,
        queued_seconds: float = 0.0,
        workspaces_list_removed: bool = False,
        writer: Writer | None = None,
        pending_seconds: float = 0.05,
        retry_delay_seconds: float | None = None,
        records_per_stream: int = 100,
        error_style: Literal["v0", "v1", "head"] = "v1",
        token_expires_in: int | None = None,
        checker: OpenApiChecker | None = None,
        actor_page_size: int | None = None,
    ) -> None:
        if auth not in {"none", "basic", "bearer", "client_credentials"}:
            raise ValueError(f"unknown auth mode {auth!r}")
        if error_style not in {"v0", "v1", "head"}:
            raise ValueError(f"unknown error style {error_style!r}")
        self.auth = auth
        self.username, self.password, self.token = username, password, token
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.token_expires_in = token_expires_in
        self.job_seconds = job_seconds
        self.queued_seconds = queued_seconds
        self.pending_seconds = pending_seconds
        self.retry_delay_seconds = job_seconds / 2 if retry_delay_seconds is None else retry_delay_seconds
        self.records_per_stream = records_per_stream
        self.workspaces_list_removed = workspaces_list_removed
        self.writer = writer
        self.error_style = error_style
        self.checker = checker or default_checker()
        self.actor_page_size = actor_page_size  # sources/list and destinations/list page like newer servers

        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[str] = []
        self.errors: list[str] = []  # crashes of the fake (also in spec_violations) and writer exceptions
        self.jobs: dict[int, FakeJob] = {}
        self.workspaces: dict[str, FakeWorkspace] = {}
        self.connections: dict[str, FakeConnection] = {}
        self.sources: dict[str, FakeActor] = {}
        self.destinations: dict[str, FakeActor] = {}
        self.source_definitions: dict[str, FakeDefinition] = {}
        self.destination_definitions: dict[str, FakeDefinition] = {
            S3_DEFINITION_ID: FakeDefinition(S3_DEFINITION_ID, "S3", "airbyte/destination-s3", "1.8.0", S3_SECRETS)
        }

        self._lock = threading.RLock()
        self.add_source_definition("Faker", definition_id=FAKER_DEFINITION_ID, secrets=("api_key",))
        self._next_job_id = 1
        self._plans: dict[str, list[Outcome]] = {}
        self._stuck: set[str] = set()
        self._faults: list[_Fault] = []
        self._tampers: list[_Tamper] = []
        self._slow_triggers: list[float] = []
        self._forced_conflicts: list[str] = []
        self._tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self._jwt_key = secrets.token_bytes(32)
        self._stop = threading.Event()
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> FakeAirbyte:
        try:
            self._start()
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._shutdown()

    @property
    def config_url(self) -> str:
        return self.url + CONFIG_PREFIX

    @property
    def public_url(self) -> str:
        return self.url + PUBLIC_PREFIX

    def _start(self) -> None:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the listener
        # declares it, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=methods)])
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-airbyte-{port}", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._server_thread.is_alive():
                raise RuntimeError("fake Airbyte server thread died during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("fake Airbyte server did not start within 15 s")
            time.sleep(0.005)
        self._ticker = threading.Thread(target=self._tick_loop, name=f"fake-airbyte-ticker-{port}", daemon=True)
        self._ticker.start()

    def _shutdown(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
            if self._server_thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._server_thread.join(timeout=5)
        if self._ticker is not None:
            self._ticker.join(timeout=10)

    # -- test setup API ----------------------------------------------------------------------------------------
    def add_workspace(self, name: str, *, organization_id: str = DEFAULT_ORGANIZATION_ID) -> str:
        workspace = FakeWorkspace(str(uuid.uuid4()), name, organization_id)
        with self._lock:
            self.workspaces[workspace.workspace_id] = workspace
        return workspace.workspace_id

    def add_connection(
        self,
        name: str,
        *,
        workspace_id: str | None = None,
        status: str = "active",
        streams: Iterable[str] = ("users",),
        source_name: str | None = None,
    ) -> str:
        """A connection (namespace = custom format ``source_name``, default its name); returns its id."""
        if status not in {"active", "inactive", "deprecated", "locked"}:
            raise ValueError(f"unknown connection status {status!r}")
        with self._lock:
            if workspace_id is None:
                workspace_id = next(iter(self.workspaces), None) or self.add_workspace("Default Workspace")
            elif workspace_id not in self.workspaces:
                raise KeyError(f"unknown workspace {workspace_id}")
            connection = FakeConnection(
                str(uuid.uuid4()), name, workspace_id, status, list(streams), source_name or name
            )
            self.connections[connection.connection_id] = connection
        return connection.connection_id

    def set_sync_mode(self, connection_id: str, stream: str, sync_mode: str, destination_sync_mode: str) -> None:
        """Configure one stream of a connection, as a user editing it in the Airbyte UI would."""
        with self._lock:
            conn = self.connections[connection_id]
            streams = conn.catalog or self._connection_read_default(conn)["syncCatalog"]["streams"]
            for item in streams:
                if item["stream"]["name"] == stream:
                    item["config"].update(syncMode=sync_mode, destinationSyncMode=destination_sync_mode)
            conn.catalog = streams

    def set_connection_status(self, connection_id: str, status: str) -> None:
        with self._lock:
            self.connections[connection_id].status = status

    def plan_attempts(self, connection_id: str, outcomes: list[Outcome]) -> None:
        """Outcomes of the attempts of the connection's next job ("succeeded" | "failed" | {"failed": {...}}).

        ``{"failed": {...}, "committed": True}``: the attempt writes its records (and Airbyte counts them as
        committed) before it fails, as a destination that flushed and checkpointed part of a sync does.
        """
        if not outcomes:
            raise ValueError("plan at least one attempt")
        for outcome in outcomes:
            ok = outcome in ("succeeded", "failed") or (
                isinstance(outcome, dict)
                and set(outcome) in ({"failed"}, {"failed", "committed"})
                and isinstance(outcome["failed"], dict)
                and outcome.get("committed", True) is True
            )
            if not ok:
                raise ValueError(f"bad attempt outcome {outcome!r}")
        with self._lock:
            self._plans[connection_id] = list(outcomes)

    def stick_running(self, connection_id: str) -> None:
        """The connection's next job stays running until it is cancelled."""
        with self._lock:
            self._stuck.add(connection_id)

    def fail_next(
        self,
        method: str,
        path_suffix: str,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """The next ``count`` matching requests get ``status`` before auth and before any state changes.

        The request is still checked against the spec; the injected response is not (``injected=True``).
        """
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_suffix.rstrip("/"), status, count, retry_after, body))

    def slow_trigger(self, seconds: float) -> None:
        """The next sync trigger starts the job at once but answers only after ``seconds``."""
        with self._lock:
            self._slow_triggers.append(seconds)

    def conflict_on_trigger(self, style: Literal["v0", "v1", "head", "public"]) -> None:
        """The next trigger answers 409 in ``style``'s body while a job of that connection is (made) running."""
        if style not in {"v0", "v1", "head", "public"}:
            raise ValueError(f"unknown conflict style {style!r}")
        with self._lock:
            self._forced_conflicts.append(style)

    def expire_tokens(self) -> None:
        """Every token issued so far is invalid (401) from now on."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def tamper_next(self, method: str, path_suffix: str, mutate: Callable[[Any], Any]) -> None:
        """Pass the next matching response body through ``mutate`` before it is validated and sent (self-tests)."""
        with self._lock:
            self._tampers.append(_Tamper(method.upper(), path_suffix.rstrip("/"), mutate))

    # -- configuration objects (provisioning) ---------------------------------------------------------------
    def add_source_definition(
        self,
        name: str,
        *,
        definition_id: str | None = None,
        docker_repository: str | None = None,
        secrets: Iterable[str] = (),
        streams: Iterable[str | FakeStream] = ("users", "products", "purchases"),
    ) -> str:
        """A source connector; a source created from it discovers ``streams``."""
        definition = FakeDefinition(
            definition_id or str(uuid.uuid4()),
            name,
            docker_repository or f"airbyte/source-{name.lower()}",
            "1.0.0",
            tuple(secrets),
            [_fake_stream(s) for s in streams],
        )
        with self._lock:
            self.source_definitions[definition.definition_id] = definition
        return definition.definition_id

    def add_source(
        self,
        name: str,
        *,
        workspace_id: str | None = None,
        definition_id: str = FAKER_DEFINITION_ID,
        config: dict[str, Any] | None = None,
        streams: Iterable[str | FakeStream] | None = None,
    ) -> str:
        """A configured source (discovers ``streams``, default its definition's); returns its id."""
        with self._lock:
            workspace_id = self._default_workspace(workspace_id)
            definition = self.source_definitions[definition_id]
            found = [_fake_stream(s) for s in streams] if streams is not None else list(definition.streams)
            source = FakeActor(str(uuid.uuid4()), name, workspace_id, definition_id, dict(config or {}), streams=found)
            self.sources[source.actor_id] = source
        return source.actor_id

    def set_source_streams(self, source_id: str, streams: Iterable[str | FakeStream]) -> None:
        """What the source discovers from now on."""
        with self._lock:
            self.sources[source_id].streams = [_fake_stream(s) for s in streams]

    def fail_discover(self, source_id: str, message: str | None) -> None:
        """Discover of the source fails with ``message`` (None: works again)."""
        with self._lock:
            self.sources[source_id].discover_error = message

    def add_destination(
        self,
        name: str,
        config: dict[str, Any],
        *,
        workspace_id: str | None = None,
        definition_id: str = S3_DEFINITION_ID,
    ) -> str:
        """A configured destination; returns its id."""
        with self._lock:
            workspace_id = self._default_workspace(workspace_id)
            destination = FakeActor(str(uuid.uuid4()), name, workspace_id, definition_id, dict(config))
            self.destinations[destination.actor_id] = destination
        return destination.actor_id

    def write_requests(self) -> list[RecordedRequest]:
        """Requests that create or update sources, destinations or connections."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/") in WRITE_OPERATIONS]

    def _default_workspace(self, workspace_id: str | None) -> str:
        if workspace_id is None:
            return next(iter(self.workspaces), None) or self.add_workspace("Default Workspace")
        if workspace_id not in self.workspaces:
            raise KeyError(f"unknown workspace {workspace_id}")
        return workspace_id

    # -- inspection helpers ------------------------------------------------------------------------------------
    def job(self, job_id: int) -> FakeJob:
        with self._lock:
            return self.jobs[job_id]

    def jobs_for(self, connection_id: str) -> list[FakeJob]:
        with self._lock:
            return [job for job in self.jobs.values() if job.connection_id == connection_id]

    def wait_for_job(self, job_id: int, statuses: Iterable[str] = TERMINAL_STATUSES, timeout: float = 10) -> FakeJob:
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._advance_all(time.time())
                job = self.jobs[job_id]
                if job.status in wanted:
                    return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is {job.status}, not in {sorted(wanted)} after {timeout}s")
            time.sleep(0.005)

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.rstrip("/").endswith(path_suffix.rstrip("/"))
                and (method is None or r.method == method.upper())
            ]

    # -- state machine -----------------------------------------------------------------------------------------
    def _tick_loop(self) -> None:
        while not self._stop.wait(0.01):
            with self._lock:
                self._advance_all(time.time())
                due = [job for job in self.jobs.values() if job.writer_state == "due"]
                for job in due:
                    job.writer_state = "running"
                work = [(job, self.connections[job.connection_id]) for job in due]
            for job, connection in work:
                result: dict[str, int] | None = None
                error: str | None = None
                try:
                    assert self.writer is not None
                    result = dict(self.writer(job, connection))
                except Exception as exc:  # the writer's failure fails the attempt, as a destination's would
                    error = f"{type(exc).__name__}: {exc}"
                    self.errors.append(f"writer failed for job {job.id}: {error}\n{traceback.format_exc()}")
                with self._lock:
                    job.writer_calls += 1
                    job.writer_state = "done"
                    if job.terminal:
                        continue  # cancelled while writing
                    attempt = job.attempts[-1]
                    now = time.time()
                    if error is None and result is not None and _commits(attempt.outcome):
                        self._end_attempt_failed(job, attempt, now, attempt.outcome, result)
                    elif error is None and result is not None:
                        self._end_attempt_succeeded(job, attempt, now, result)
                    else:
                        job.writer_error = error
                        failure = {
                            "failed": {
                                "failureOrigin": "destination",
                                "failureType": "system_error",
                                "externalMessage": f"Something went wrong in the destination: {error}",
                            }
                        }
                        self._end_attempt_failed(job, attempt, now, failure)

    def _advance_all(self, now: float) -> None:
        for job in self.jobs.values():
            if not job.terminal and job.writer_state is None:
                self._advance(job, now)

    def _advance(self, job: FakeJob, now: float) -> None:
        while not job.terminal and job.writer_state is None:
            if job.status == "pending":
                at = job.created_at + self.pending_seconds
                if now < at:
                    return
                if self.queued_seconds > 0:
                    self._set_status(job, "queued", at)
                else:
                    self._start_attempt(job, at)
            elif job.status == "queued":
                at = job.phase_since + self.queued_seconds
                if now < at:
                    return
                self._start_attempt(job, at)
            elif job.status == "incomplete":
                at = job.phase_since + self.retry_delay_seconds
                if now < at:
                    return
                self._start_attempt(job, at)
            elif job.status == "running":
                attempt = job.attempts[-1]
                if now < attempt.planned_end:
                    return
                if attempt.outcome == "succeeded" or _commits(attempt.outcome):
                    if self.writer is not None and job.config_type == "sync":
                        job.writer_state = "due"  # the ticker calls the writer outside the lock
                        return
                    stats = dict.fromkeys(job.streams, self.records_per_stream if job.config_type == "sync" else 0)
                    if _commits(attempt.outcome):
                        self._end_attempt_failed(job, attempt, attempt.planned_end, attempt.outcome, stats)
                    else:
                        self._end_attempt_succeeded(job, attempt, attempt.planned_end, stats)
                else:
                    self._end_attempt_failed(job, attempt, attempt.planned_end, attempt.outcome)
            else:  # pragma: no cover - defensive
                return

    def _set_status(self, job: FakeJob, status: str, at: float) -> None:
        job.status = status
        job.phase_since = at
        job.updated_at = max(job.updated_at, at)

    def _start_attempt(self, job: FakeJob, at: float) -> None:
        number = len(job.attempts)
        outcome = job.outcomes[min(number, len(job.outcomes) - 1)]
        planned_end = math.inf if job.stuck else at + self.job_seconds
        attempt = FakeAttempt(number, at, planned_end, outcome, updated_at=at)
        attempt.log_lines = [
            f"{_log_time(at)} platform > Starting attempt {number} of job {job.id} (connection {job.connection_id})",
            f"{_log_time(at)} source > Reading streams: {', '.join(job.streams)}",
        ]
        job.attempts.append(attempt)
        job.started_at = job.started_at or at
        self._set_status(job, "running", at)

    def _end_attempt_succeeded(self, job: FakeJob, attempt: FakeAttempt, at: float, records: dict[str, int]) -> None:
        attempt.stream_stats = {name: _stats(int(records.get(name, 0))) for name in job.streams}
        for name, count in records.items():  # a writer may report streams the catalog does not list
            attempt.stream_stats.setdefault(name, _stats(int(count)))
        attempt.status = "succeeded"
        attempt.ended_at = attempt.updated_at = at
        total = sum(s["recordsCommitted"] for s in attempt.stream_stats.values())
        attempt.log_lines += [
            f"{_log_time(at)} destination > Committed {total} records",
            f"{_log_time(at)} platform > Attempt {attempt.id} of job {job.id} succeeded",
        ]
        self._set_status(job, "succeeded", at)

    def _end_attempt_failed(
        self, job: FakeJob, attempt: FakeAttempt, at: float, outcome: Outcome, committed: dict[str, int] | None = None
    ) -> None:
        custom = outcome.get("failed", {}) if isinstance(outcome, dict) else {}
        attempt.failure = {
            "failureOrigin": "source",
            "failureType": "system_error",
            "externalMessage": "Something went wrong within the source connector",
            "internalMessage": "io.airbyte.workers.internal.exception.SourceException: "
            "Source process exited with non-zero exit code 1",
            "retryable": True,
            "fromTraceMessage": True,
            **custom,
            "timestamp": int(at * 1000),
        }
        emitted = self.records_per_stream // 2 if job.config_type == "sync" else 0
        attempt.stream_stats = {name: _stats(emitted, committed=0) for name in job.streams}
        if committed is not None:  # what it wrote before failing is committed
            attempt.stream_stats = {name: _stats(int(committed.get(name, 0))) for name in job.streams}
        attempt.status = "failed"
        attempt.ended_at = attempt.updated_at = at
        attempt.log_lines += [
            f"{_log_time(at)} platform > Attempt {attempt.id} of job {job.id} failed: "
            f"{attempt.failure.get('externalMessage')}",
        ]
        if attempt.id + 1 < len(job.outcomes):
            self._set_status(job, "incomplete", at)
        else:
            self._set_status(job, "failed", at)

    def _cancel_job(self, job: FakeJob, at: float) -> None:
        job.cancelled = True
        if job.attempts and job.attempts[-1].status == "running":
            attempt = job.attempts[-1]
            progress = self._progress(job, attempt, at)
            attempt.stream_stats = {
                name: _stats(stats["recordsEmitted"], committed=0) for name, stats in progress.items()
            }
            attempt.failure = {
                "failureOrigin": "airbyte_platform",
                "failureType": "manual_cancellation",
                "externalMessage": "This attempt was cancelled",
                "internalMessage": "Setting attempt to FAILED because the job was cancelled",
                "timestamp": int(at * 1000),
            }
            attempt.status = "failed"
            attempt.ended_at = attempt.updated_at = at
            attempt.log_lines.append(f"{_log_time(at)} platform > Attempt {attempt.id} cancelled")
        self._set_status(job, "cancelled", at)

    def _create_job(self, connection: FakeConnection, now: float, config_type: str = "sync") -> FakeJob:
        job = FakeJob(
            id=self._next_job_id,
            connection_id=connection.connection_id,
            config_type=config_type,
            streams=list(connection.streams),
            created_at=now,
            outcomes=self._plans.pop(connection.connection_id, ["succeeded"]),
            stuck=connection.connection_id in self._stuck,
            updated_at=now,
            phase_since=now,
        )
        self._stuck.discard(connection.connection_id)
        self._next_job_id += 1
        self.jobs[job.id] = job
        return job

    def _active_job(self, connection_id: str) -> FakeJob | None:
        active = [j for j in self.jobs.values() if j.connection_id == connection_id and not j.terminal]
        return max(active, key=lambda j: (j.created_at, j.id)) if active else None

    def _progress(self, job: FakeJob, attempt: FakeAttempt, now: float) -> dict[str, dict[str, int]]:
        """In-progress stats of a running attempt (what the stats table shows to jobs/list)."""
        if attempt.status != "running":
            return attempt.stream_stats
        fraction = min(0.95, max(0.0, (now - attempt.created_at) / max(self.job_seconds, 1e-6)))
        emitted = int(self.records_per_stream * fraction) if job.config_type == "sync" else 0
        return {name: _stats(emitted, committed=emitted // 2) for name in job.streams}

    # -- serialisation -----------------------------------------------------------------------------------------
    def _attempt_read(self, job: FakeJob, attempt: FakeAttempt, now: float, *, in_progress: bool) -> dict[str, Any]:
        read: dict[str, Any] = {
            "id": attempt.id,
            "status": attempt.status,
            "createdAt": int(attempt.created_at),
            "updatedAt": int(max(attempt.updated_at, attempt.created_at)),
        }
        if attempt.ended_at is not None:
            read["endedAt"] = int(attempt.ended_at)
        stream_stats = attempt.stream_stats if attempt.ended_at is not None else None
        if stream_stats is None and in_progress:
            stream_stats = self._progress(job, attempt, now)
        if stream_stats is not None:
            total = _sum_stats(stream_stats.values())
            read["bytesSynced"] = total["bytesEmitted"]
            read["recordsSynced"] = total["recordsEmitted"]
            read["totalStats"] = total
            read["streamStats"] = [{"streamName": name, "stats": stats} for name, stats in stream_stats.items()]
        if attempt.failure is not None:
            read["failureSummary"] = {"failures": [attempt.failure], "partialSuccess": False}
        return read

    def _aggregated(self, job: FakeJob, now: float) -> tuple[dict[str, int], list[dict[str, Any]]]:
        per_stream: dict[str, dict[str, int]] = {}
        for attempt in job.attempts:
            for name, stats in self._progress(job, attempt, now).items():
                into = per_stream.setdefault(name, dict.fromkeys(_AGG_KEYS, 0))
                for key in _AGG_KEYS:
                    into[key] += stats.get(key, 0)
        total = dict.fromkeys(_AGG_KEYS, 0)
        for stats in per_stream.values():
            for key in _AGG_KEYS:
                total[key] += stats[key]
        streams = [
            {"streamName": name, **stats, "wasBackfilled": False, "wasResumed": False}
            for name, stats in per_stream.items()
        ]
        return total, streams

    def _job_read(self, job: FakeJob, now: float, *, aggregated: bool) -> dict[str, Any]:
        read: dict[str, Any] = {
            "id": job.id,
            "configType": job.config_type,
            "configId": job.connection_id,
            "enabledStreams": [{"name": name} for name in job.streams],
            "createdAt": int(job.created_at),
            "updatedAt": int(max(job.updated_at, job.created_at)),
            "status": job.status,
        }
        if job.started_at is not None:
            read["startedAt"] = int(job.started_at)
        if aggregated:
            read["aggregatedStats"], read["streamAggregatedStats"] = self._aggregated(job, now)
        return read

    def _job_info(self, job: FakeJob, now: float, *, logs: bool) -> dict[str, Any]:
        return {
            "job": self._job_read(job, now, aggregated=not logs),
            "attempts": [
                {
                    "attempt": self._attempt_read(job, attempt, now, in_progress=False),
                    "logType": "formatted",
                    "logs": {"logLines": list(attempt.log_lines) if logs else []},
                }
                for attempt in job.attempts
            ],
        }

    def _public_job(self, job: FakeJob, now: float) -> dict[str, Any]:
        created, updated = int(job.created_at), int(max(job.updated_at, job.created_at))
        total, _ = self._aggregated(job, now)
        body: dict[str, Any] = {
            "jobId": job.id,
            "status": job.status,
            "jobType": PUBLIC_JOB_TYPES[job.config_type],
            "startTime": _java_iso(created),
            "connectionId": job.connection_id,
            "bytesSynced": total["bytesCommitted"],
            "rowsSynced": total["recordsCommitted"],
        }
        if job.terminal:
            body["lastUpdatedAt"] = _java_iso(updated)
        if job.status != "pending":
            body["duration"] = _java_duration(updated - created)
        return body

    def _connection_read(self, conn: FakeConnection) -> dict[str, Any]:
        read = self._connection_read_default(conn)
        if conn.catalog is not None:
            read["syncCatalog"] = {"streams": json.loads(json.dumps(conn.catalog))}
        read["namespaceDefinition"] = conn.namespace_definition
        if conn.namespace_definition == "customformat":
            read["namespaceFormat"] = conn.namespace_format or conn.source_name
        else:
            read.pop("namespaceFormat", None)
        read["prefix"] = conn.prefix
        read["scheduleType"] = conn.schedule_type
        return read

    def _connection_read_default(self, conn: FakeConnection) -> dict[str, Any]:
        return {
            "connectionId": conn.connection_id,
            "name": conn.name,
            "namespaceDefinition": "customformat",
            "namespaceFormat": conn.source_name,
            "prefix": "",
            "sourceId": conn.source_id,
            "destinationId": conn.destination_id,
            "operationIds": [],
            "syncCatalog": {
                "streams": [
                    {
                        "stream": {
                            "name": name,
                            "jsonSchema": STREAM_JSON_SCHEMA,
                            "supportedSyncModes": ["full_refresh", "incremental"],
                            "sourceDefinedCursor": False,
                            "defaultCursorField": ["updated_at"],
                            "sourceDefinedPrimaryKey": [["id"]],
                            "isResumable": True,
                        },
                        "config": {
                            "syncMode": "full_refresh",
                            "destinationSyncMode": "append",
                            "cursorField": [],
                            "primaryKey": [["id"]],
                            "aliasName": name,
                            "selected": True,
                            "fieldSelectionEnabled": False,
                        },
                    }
                    for name in conn.streams
                ]
            },
            "scheduleType": "manual",
            "status": conn.status,
            "breakingChange": False,
            "notifySchemaChanges": False,
            "notifySchemaChangesByEmail": False,
            "nonBreakingChangesPreference": "ignore",
            "created_at": int(conn.created_at),
            "backfillPreference": "disabled",
            "workspaceId": conn.workspace_id,
            "tags": [],
        }

    def _public_connection(self, conn: FakeConnection) -> dict[str, Any]:
        return {
            "connectionId": conn.connection_id,
            "name": conn.name,
            "sourceId": conn.source_id,
            "destinationId": conn.destination_id,
            "workspaceId": conn.workspace_id,
            "status": conn.status,
            "schedule": {"scheduleType": "manual"},
            "nonBreakingSchemaUpdatesBehavior": "ignore",
            "namespaceDefinition": "custom_format",
            "namespaceFormat": conn.source_name,
            "prefix": "",
            "configurations": {"streams": self._public_streams(conn)},
            "createdAt": int(conn.created_at),
            "tags": [],
        }

    @staticmethod
    def _public_streams(conn: FakeConnection) -> list[dict[str, Any]]:
        if conn.catalog is None:
            return [{"name": name, "syncMode": "full_refresh_append", "primaryKey": [["id"]]} for name in conn.streams]
        streams = []
        for item in conn.catalog:
            config = item.get("config") or {}
            if not config.get("selected", True):
                continue
            stream: dict[str, Any] = {
                "name": item["stream"]["name"],
                "syncMode": f"{config['syncMode']}_{config['destinationSyncMode']}",
            }
            if config.get("cursorField"):
                stream["cursorField"] = config["cursorField"]
            if config.get("primaryKey"):
                stream["primaryKey"] = config["primaryKey"]
            streams.append(stream)
        return streams

    @staticmethod
    def _workspace_read(ws: FakeWorkspace) -> dict[str, Any]:
        return {
            "workspaceId": ws.workspace_id,
            "customerId": ws.customer_id,
            "name": ws.name,
            "slug": ws.name.lower().replace(" ", "-"),
            "initialSetupComplete": True,
            "displaySetupWizard": False,
            "anonymousDataCollection": False,
            "news": False,
            "securityUpdates": False,
            "notifications": [],
            "organizationId": ws.organization_id,
            "tombstone": ws.tombstone,
        }

    @staticmethod
    def _public_workspace(ws: FakeWorkspace) -> dict[str, Any]:
        return {"workspaceId": ws.workspace_id, "name": ws.name, "dataResidency": "auto", "notifications": {}}

    # -- error bodies ------------------------------------------------------------------------------------------
    def _micronaut(self, status: int, message: str, detail: str, path: str) -> _Reply:
        body = {
            "message": message,
            "_links": {"self": {"href": path, "templated": False}},
            "_embedded": {"errors": [{"message": detail}]},
        }
        return _Reply(status, body)

    def _config_not_found(self, kind: str, ident: Any, style: str | None = None) -> _Reply:
        style = style or self.error_style
        if style == "head":
            return _Reply(404, {"errorId": str(uuid.uuid4())})
        messages = {
            "connection": (f"Could not find configuration for STANDARD_SYNC: {ident}.", "STANDARD_SYNC"),
            "workspace": (f"Could not find configuration for STANDARD_WORKSPACE: {ident}.", "STANDARD_WORKSPACE"),
            "job": (f"Could not find job with id: {ident}", "JOB"),
            "source": (f"Could not find configuration for SOURCE_CONNECTION: {ident}.", "SOURCE_CONNECTION"),
            "destination": (
                f"Could not find configuration for DESTINATION_CONNECTION: {ident}.",
                "DESTINATION_CONNECTION",
            ),
            "source_definition": (
                f"Could not find configuration for STANDARD_SOURCE_DEFINITION: {ident}.",
                "STANDARD_SOURCE_DEFINITION",
            ),
            "destination_definition": (
                f"Could not find configuration for STANDARD_DESTINATION_DEFINITION: {ident}.",
                "STANDARD_DESTINATION_DEFINITION",
            ),
        }
        message, _ = messages[kind]
        return _Reply(
            404,
            {
                "id": str(ident),
                "message": message,
                "exceptionClassName": NOT_FOUND_CLASSES[style],
                "exceptionStack": _stack(NOT_FOUND_CLASSES[style], message),
                "rootCauseExceptionClassName": "io.airbyte.data.exceptions.ConfigNotFoundException",
                "rootCauseExceptionStack": _stack("io.airbyte.data.exceptions.ConfigNotFoundException", message),
            },
        )

    def _config_conflict(self, connection_id: str, style: str) -> _Reply:
        message = f"A sync is already running for: {connection_id}"
        if style == "public":
            return self._problem("try-again-later", message)
        if style == "head":
            return _Reply(409, {"message": message, "details": {}, "errorId": str(uuid.uuid4())})
        body: dict[str, Any] = {"message": message, "exceptionClassName": CONFLICT_CLASSES[style]}
        if style == "v0":
            body["exceptionStack"] = _stack(CONFLICT_CLASSES[style], message)
        return _Reply(409, body)

    def _config_internal(self, message: str) -> _Reply:
        if self.error_style == "head":
            return _Reply(500, {"errorId": str(uuid.uuid4())})
        text = f"Internal Server Error: {message}"
        return _Reply(
            500,
            {
                "message": text,
                "exceptionClassName": "java.lang.IllegalStateException",
                "exceptionStack": _stack("java.lang.IllegalStateException", message),
                "rootCauseExceptionClassName": "java.lang.IllegalStateException",
                "rootCauseExceptionStack": _stack("java.lang.IllegalStateException", message),
            },
        )

    def _config_invalid(self, errors: list[str]) -> _Reply:
        return _Reply(
            422,
            {
                "message": "Some properties contained invalid input.",
                "exceptionClassName": "io.airbyte.commons.server.errors.BadObjectSchemaKnownException",
                "validationErrors": [{"propertyPath": "body", "message": error[:500]} for error in errors],
            },
        )

    @staticmethod
    def _problem(title: str, message: str | None = None, data: dict[str, Any] | None = None) -> _Reply:
        status, kind, detail = PROBLEMS[title]
        body: dict[str, Any] = {"status": status, "type": kind, "title": title, "detail": detail}
        if data is not None:
            body["data"] = data
        elif message is not None:
            body["data"] = {"message": message}
        return _Reply(status, body, content_type="application/problem+json")

    def _public_not_found(self, kind: str, ident: Any) -> _Reply:
        return self._problem("resource-not-found", data={"resourceType": kind, "resourceId": str(ident)})

    # -- auth --------------------------------------------------------------------------------------------------
    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.auth == "none":
            return True
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        value = value.strip()
        if self.auth == "basic":
            if scheme.lower() != "basic":
                return False
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self.username) and hmac.compare_digest(password, self.password)
        if scheme.lower() != "bearer" or not value:
            return False
        if self.auth == "bearer":
            return hmac.compare_digest(value, self.token)
        with self._lock:
            expiry = self._tokens.get(value)
        return expiry is not None and time.time() < expiry

    def _unauthorized(self, api: str, path: str) -> _Reply:
        if self.auth == "basic":  # the nginx proxy of docker-compose installs answers, not Airbyte
            html = "<html><head><title>401 Authorization Required</title></head><body>401</body></html>"
            return _Reply(401, html, {"WWW-Authenticate": 'Basic realm="Airbyte"'}, content_type="text/html")
        if api == "public":
            reply = self._problem("invalid-api-key")
        else:
            reply = self._micronaut(401, "Unauthorized", "Unauthorized", path)
        reply.headers["WWW-Authenticate"] = 'Bearer realm="Airbyte"'
        return reply

    def _issue_token(self, client_id: Any, client_secret: Any) -> str | None:
        if not (
            isinstance(client_id, str)
            and isinstance(client_secret, str)
            and hmac.compare_digest(client_id, self.client_id)
            and hmac.compare_digest(client_secret, self.client_secret)
        ):
            return None
        now = time.time()
        expiry = now + self.token_ttl_seconds
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "iss": "fake-airbyte",
            "sub": client_id,
            "iat": int(now),
            "exp": math.ceil(expiry),
            "jti": str(uuid.uuid4()),
        }
        payload = _b64url(json.dumps(claims).encode())
        signature = _b64url(hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self._lock:
            self._tokens[token] = expiry
        return token

    # -- HTTP --------------------------------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        started = time.time()
        raw = await request.body()
        path = request.url.path
        norm = path.rstrip("/") or "/"
        method = request.method.upper()
        headers = {key.lower(): value for key, value in request.headers.items()}
        query = parse_qs(request.url.query, keep_blank_values=True)
        content_type = headers.get("content-type", "")
        body, body_error = _parse_body(raw, content_type)
        peer = (request.client.host, request.client.port) if request.client else None
        record = RecordedRequest(method, path, query, headers, body, raw, started, client=peer)
        try:
            reply = await self._handle(method, norm, query, headers, body, body_error, content_type)
        except Exception as exc:
            message = f"fake Airbyte crashed on {method} {path}: {type(exc).__name__}: {exc}"
            self.errors.append(message + "\n" + traceback.format_exc())
            self.spec_violations.append(message)
            reply = _Reply(500, {"message": message}, validate=False)
        with self._lock:
            tamper = next((t for t in self._tampers if t.method == method and norm.endswith(t.suffix)), None)
            if tamper is not None:
                self._tampers.remove(tamper)
        if tamper is not None:
            reply.body = tamper.mutate(reply.body)
        if reply.validate:
            problems = self.checker.check_response(
                method, norm, reply.status, reply.body, content_type=reply.content_type
            )
            if problems:
                with self._lock:
                    self.spec_violations.extend(f"response {method} {path}: {p}" for p in problems)
        if isinstance(reply.body, str):
            payload = reply.body.encode()
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
        record.ended = time.time()
        record.status = reply.status
        record.response_json = reply.body
        record.response_headers = dict(reply.headers)
        record.injected = not reply.validate
        with self._lock:
            self.requests.append(record)
        return Response(payload, reply.status, headers=reply.headers, media_type=reply.content_type)

    async def _handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
        body_error: str | None,
        content_type: str,
    ) -> _Reply:
        api = "public" if path == PUBLIC_PREFIX or path.startswith(PUBLIC_PREFIX + "/") else "config"
        request_problems = self.checker.check_request(
            method,
            path,
            body=body if body_error is None else None,
            query=query,
            content_type=content_type or None,
        )
        if body_error is not None:
            request_problems.append(f"request body: {body_error}")
        if request_problems:
            with self._lock:
                self.spec_violations.extend(f"request {method} {path}: {p}" for p in request_problems)

        with self._lock:
            fault = next((f for f in self._faults if f.method == method and path.endswith(f.suffix)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        if fault is not None:
            reply_headers = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                reply_headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
            default = {"message": f"Injected failure: HTTP {fault.status}"}
            return _Reply(
                fault.status, fault.body if fault.body is not None else default, reply_headers, validate=False
            )

        anonymous = path in {
            f"{CONFIG_PREFIX}/health",
            f"{PUBLIC_PREFIX}/health",
            f"{CONFIG_PREFIX}/applications/token",
            f"{PUBLIC_PREFIX}/applications/token",
        }
        if not anonymous and not self._authorized(headers):
            return self._unauthorized(api, path)
        if self.workspaces_list_removed and path == f"{CONFIG_PREFIX}/workspaces/list":
            return self._micronaut(404, "Not Found", "Page Not Found", path)
        handler = self._route(method, path)
        if handler is None:
            if any(self._route(other, path) for other in ("GET", "POST", "DELETE") if other != method):
                return self._micronaut(
                    405, "Method Not Allowed", f"Method [{method}] not allowed for URI [{path}]", path
                )
            return self._micronaut(404, "Not Found", "Page Not Found", path)
        if request_problems:
            if api == "config":
                return self._config_invalid(request_problems)
            return self._problem("bad-request", "; ".join(request_problems)[:1000])
        func, params = handler
        result = func(body if isinstance(body, dict) else {}, query, **params)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def _route(self, method: str, path: str) -> tuple[Callable[..., Any], dict[str, str]] | None:
        table: dict[tuple[str, str], Callable[..., Any]] = {
            ("GET", f"{CONFIG_PREFIX}/health"): lambda b, q: _Reply(200, {"available": True}),
            ("POST", f"{CONFIG_PREFIX}/connections/sync"): self._h_sync,
            ("POST", f"{CONFIG_PREFIX}/connections/get"): self._h_connection_get,
            ("POST", f"{CONFIG_PREFIX}/connections/list"): self._h_connection_list,
            ("POST", f"{CONFIG_PREFIX}/workspaces/list"): self._h_workspaces_list,
            ("POST", f"{CONFIG_PREFIX}/workspaces/list_by_organization_id"): self._h_workspaces_by_org,
            ("POST", f"{CONFIG_PREFIX}/jobs/get"): lambda b, q: self._h_job_get(b, logs=True),
            ("POST", f"{CONFIG_PREFIX}/jobs/get_without_logs"): lambda b, q: self._h_job_get(b, logs=False),
            ("POST", f"{CONFIG_PREFIX}/jobs/get_light"): self._h_job_get_light,
            ("POST", f"{CONFIG_PREFIX}/jobs/list"): self._h_jobs_list,
            ("POST", f"{CONFIG_PREFIX}/jobs/cancel"): lambda b, q: self._h_cancel(b.get("id"), "config"),
            ("POST", f"{CONFIG_PREFIX}/applications/token"): self._h_config_token,
            ("POST", f"{CONFIG_PREFIX}/destination_definitions/list_for_workspace"): self._h_destination_definitions,
            ("POST", f"{CONFIG_PREFIX}/destinations/list"): lambda b, q: self._h_actor_list(b, "destination"),
            ("POST", f"{CONFIG_PREFIX}/destinations/create"): lambda b, q: self._h_actor_create(b, "destination"),
            ("POST", f"{CONFIG_PREFIX}/destinations/update"): lambda b, q: self._h_actor_update(b, "destination"),
            ("POST", f"{CONFIG_PREFIX}/sources/list"): lambda b, q: self._h_actor_list(b, "source"),
            ("POST", f"{CONFIG_PREFIX}/sources/create"): lambda b, q: self._h_actor_create(b, "source"),
            ("POST", f"{CONFIG_PREFIX}/sources/update"): lambda b, q: self._h_actor_update(b, "source"),
            ("POST", f"{CONFIG_PREFIX}/sources/discover_schema"): self._h_discover,
            ("POST", f"{CONFIG_PREFIX}/scheduler/sources/discover_schema"): self._h_discover_config,
            ("POST", f"{CONFIG_PREFIX}/connections/create"): self._h_connection_create,
            ("POST", f"{CONFIG_PREFIX}/connections/update"): self._h_connection_update,
            ("GET", f"{PUBLIC_PREFIX}/health"): lambda b, q: _Reply(
                200, "Successful operation", content_type="text/plain"
            ),
            ("POST", f"{PUBLIC_PREFIX}/applications/token"): self._h_public_token,
            ("POST", f"{PUBLIC_PREFIX}/jobs"): self._h_public_create_job,
            ("GET", f"{PUBLIC_PREFIX}/jobs"): self._h_public_list_jobs,
            ("GET", f"{PUBLIC_PREFIX}/connections"): self._h_public_list_connections,
            ("GET", f"{PUBLIC_PREFIX}/workspaces"): self._h_public_list_workspaces,
        }
        func = table.get((method, path))
        if func is not None:
            return func, {}
        head, _, tail = path.rpartition("/")
        if head == f"{PUBLIC_PREFIX}/jobs" and method == "GET":
            return self._h_public_get_job, {"job_id": tail}
        if head == f"{PUBLIC_PREFIX}/jobs" and method == "DELETE":
            return lambda b, q, job_id: self._h_cancel(_int_or_none(job_id), "public"), {"job_id": tail}
        if head == f"{PUBLIC_PREFIX}/connections" and method == "GET":
            return self._h_public_get_connection, {"connection_id": tail}
        return None

    # -- Config API handlers -----------------------------------------------------------------------------------
    async def _h_sync(self, body: dict[str, Any], query: Any) -> _Reply:
        return await self._trigger(str(body.get("connectionId")), "config", "sync")

    async def _trigger(self, connection_id: str, api: str, config_type: str) -> _Reply:
        with self._lock:
            now = time.time()
            self._advance_all(now)
            conn = self.connections.get(connection_id)
            if conn is None:
                return (
                    self._public_not_found("connection", connection_id)
                    if api == "public"
                    else (self._config_not_found("connection", connection_id))
                )
            if conn.status != "active":
                if api == "public":
                    return self._problem("state-conflict", "Could not fulfill request")
                return self._config_internal("Can only sync an active connection")
            running = self._active_job(connection_id)
            forced = self._forced_conflicts.pop(0) if self._forced_conflicts else None
            if forced is not None:
                if running is None:  # make one running so the client has something to attach to
                    running = self._create_job(conn, now, config_type)
                    self._start_attempt(running, now)
                return self._config_conflict(connection_id, forced)
            if running is not None:
                return self._config_conflict(connection_id, "public" if api == "public" else self.error_style)
            job = self._create_job(conn, now, config_type)
            delay = self._slow_triggers.pop(0) if self._slow_triggers else 0.0
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            await asyncio.sleep(min(left, 0.05))  # in steps, so shutting down does not wait for it
        with self._lock:
            now = time.time()
            self._advance(job, now)
            if api == "public":
                return _Reply(200, self._public_job(job, now))
            return _Reply(200, self._job_info(job, now, logs=True))

    def _h_connection_get(self, body: dict[str, Any], query: Any) -> _Reply:
        with self._lock:
            conn = self.connections.get(str(body.get("connectionId")))
            if conn is None:
                return self._config_not_found("connection", body.get("connectionId"))
            return _Reply(200, self._connection_read(conn))

    def _h_connection_list(self, body: dict[str, Any], query: Any) -> _Reply:
        workspace_id = str(body.get("workspaceId"))
        with self._lock:
            if workspace_id not in self.workspaces:
                return self._config_not_found("workspace", workspace_id)
            tombstones = bool(body.get("includeTombstone"))
            found = [
                self._connection_read(c)
                for c in self.connections.values()
                if c.workspace_id == workspace_id and (tombstones or c.status != "deprecated")
            ]
        return _Reply(200, {"connections": found})

    def _h_workspaces_list(self, body: Any, query: Any) -> _Reply:
        with self._lock:
            found = [self._workspace_read(w) for w in self.workspaces.values() if not w.tombstone]
        return _Reply(200, {"workspaces": found})

    def _h_workspaces_by_org(self, body: dict[str, Any], query: Any) -> _Reply:
        org = str(body.get("organizationId"))
        needle = str(body.get("nameContains") or "").lower()
        pagination = body.get("pagination") or {}
        with self._lock:
            found = sorted(
                (
                    w
                    for w in self.workspaces.values()
                    if w.organization_id == org and not w.tombstone and needle in w.name.lower()
                ),
                key=lambda w: w.name.lower(),
            )
            offset = int(pagination.get("rowOffset") or 0)
            size = pagination.get("pageSize")
            page = found[offset : offset + int(size)] if size is not None else found[offset:]
            return _Reply(200, {"workspaces": [self._workspace_read(w) for w in page]})

    # -- provisioning handlers (Config API) ---------------------------------------------------------------
    def _actors(self, kind: str) -> dict[str, FakeActor]:
        return self.sources if kind == "source" else self.destinations

    def _definitions(self, kind: str) -> dict[str, FakeDefinition]:
        return self.source_definitions if kind == "source" else self.destination_definitions

    def _actor_read(self, actor: FakeActor, kind: str) -> dict[str, Any]:
        definition = self._definitions(kind).get(actor.definition_id)
        secrets = definition.secrets if definition is not None else ()
        key = "sourceId" if kind == "source" else "destinationId"
        used = [c for c in self.connections.values() if actor.actor_id in (c.source_id, c.destination_id)]
        return {
            f"{kind}DefinitionId": actor.definition_id,
            key: actor.actor_id,
            "workspaceId": actor.workspace_id,
            "connectionConfiguration": _mask(actor.config, secrets),
            "name": actor.name,
            f"{kind}Name": definition.name if definition is not None else "",
            "createdAt": int(actor.created_at),
            "status": "active" if any(c.status == "active" for c in used) else "inactive",
            "numConnections": len(used),
            "isVersionOverrideApplied": False,
            "supportState": "supported",
        }

    def _h_destination_definitions(self, body: dict[str, Any], query: Any) -> _Reply:
        workspace_id = str(body.get("workspaceId"))
        with self._lock:
            if workspace_id not in self.workspaces:
                return self._config_not_found("workspace", workspace_id)
            found = [
                {
                    "destinationDefinitionId": d.definition_id,
                    "name": d.name,
                    "dockerRepository": d.docker_repository,
                    "dockerImageTag": d.docker_image_tag,
                    "documentationUrl": f"https://docs.airbyte.com/integrations/destinations/{d.name.lower()}",
                    "supportLevel": "certified",
                    "releaseStage": "generally_available",
                }
                for d in self.destination_definitions.values()
            ]
        return _Reply(200, {"destinationDefinitions": found})

    def _h_actor_list(self, body: dict[str, Any], kind: str) -> _Reply:
        workspace_id = str(body.get("workspaceId"))
        with self._lock:
            if workspace_id not in self.workspaces:
                return self._config_not_found("workspace", workspace_id)
            actors = [a for a in self._actors(kind).values() if a.workspace_id == workspace_id]
            size = body.get("pageSize") or self.actor_page_size
            if body.get("cursor") is not None:  # the page after the actor with this id
                ids = [a.actor_id for a in actors]
                actors = actors[ids.index(body["cursor"]) + 1 :] if body["cursor"] in ids else []
            page = actors[:size] if size else actors
            reply: dict[str, Any] = {f"{kind}s": [self._actor_read(a, kind) for a in page]}
            if size:
                reply["page_size"] = size
        return _Reply(200, reply)

    def _h_actor_create(self, body: dict[str, Any], kind: str) -> _Reply:
        workspace_id = str(body.get("workspaceId"))
        definition_id = str(body.get(f"{kind}DefinitionId"))
        config = body.get("connectionConfiguration") or {}
        with self._lock:
            if workspace_id not in self.workspaces:
                return self._config_not_found("workspace", workspace_id)
            definition = self._definitions(kind).get(definition_id)
            if definition is None:
                return self._config_not_found(f"{kind}_definition", definition_id)
            problems = self._check_actor_config(kind, definition, config)
            problems += [f"{path}: a masked secret cannot be stored" for path in _masked_paths(config)]
            if problems:
                return self._config_invalid(problems)
            actor = FakeActor(str(uuid.uuid4()), str(body.get("name")), workspace_id, definition_id, dict(config))
            if kind == "source":
                actor.streams = list(definition.streams)
            self._actors(kind)[actor.actor_id] = actor
            return _Reply(200, self._actor_read(actor, kind))

    def _h_actor_update(self, body: dict[str, Any], kind: str) -> _Reply:
        actor_id = str(body.get(f"{kind}Id"))
        with self._lock:
            actor = self._actors(kind).get(actor_id)
            if actor is None:
                return self._config_not_found(kind, actor_id)
            definition = self._definitions(kind)[actor.definition_id]
            config = _unmask(body.get("connectionConfiguration") or {}, actor.config)
            problems = self._check_actor_config(kind, definition, config)
            problems += [f"{path}: a masked secret with nothing stored" for path in _masked_paths(config)]
            if problems:
                return self._config_invalid(problems)
            actor.name = str(body.get("name"))
            actor.config = config
            return _Reply(200, self._actor_read(actor, kind))

    @staticmethod
    def _check_actor_config(kind: str, definition: FakeDefinition, config: dict[str, Any]) -> list[str]:
        """What destination-s3's spec would refuse (other connectors accept any object)."""
        if kind != "destination" or definition.definition_id != S3_DEFINITION_ID:
            return []
        problems = [f"connectionConfiguration.{key}: required" for key in S3_REQUIRED if key not in config]
        fmt = config.get("format")
        if isinstance(fmt, dict) and fmt.get("format_type") not in {"CSV", "JSONL", "Avro", "Parquet"}:
            problems.append(f"connectionConfiguration.format.format_type: {fmt.get('format_type')!r} is not a format")
        return problems

    def _discover_read(self, streams: list[FakeStream], error: str | None, config_id: str | None) -> dict[str, Any]:
        now = time.time()
        job: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "configType": "discover_schema",
            "createdAt": int(now),
            "endedAt": int(now),
            "succeeded": error is None,
        }
        if config_id is not None:
            job["configId"] = config_id
        if error is not None:
            job["failureReason"] = {
                "failureOrigin": "source",
                "failureType": "config_error",
                "externalMessage": error,
                "timestamp": int(now * 1000),
            }
            return {"jobInfo": job}
        return {
            "catalog": {"streams": [_discovered(s) for s in streams]},
            "jobInfo": job,
            "catalogId": str(uuid.uuid4()),
        }

    def _h_discover(self, body: dict[str, Any], query: Any) -> _Reply:
        source_id = str(body.get("sourceId"))
        with self._lock:
            source = self.sources.get(source_id)
            if source is None:
                return self._config_not_found("source", source_id)
            return _Reply(200, self._discover_read(source.streams, source.discover_error, source_id))

    def _h_discover_config(self, body: dict[str, Any], query: Any) -> _Reply:
        definition_id = str(body.get("sourceDefinitionId"))
        with self._lock:
            if str(body.get("workspaceId")) not in self.workspaces:
                return self._config_not_found("workspace", body.get("workspaceId"))
            definition = self.source_definitions.get(definition_id)
            if definition is None:
                return self._config_not_found("source_definition", definition_id)
            return _Reply(200, self._discover_read(definition.streams, None, None))

    def _check_catalog(self, source: FakeActor | None, destination: FakeActor | None, items: list[Any]) -> list[str]:
        """What Airbyte refuses in a syncCatalog: unknown streams, unsupported modes, missing cursors."""
        problems = []
        known = {s.name: s for s in source.streams} if source is not None else None
        s3 = destination is not None and destination.definition_id == S3_DEFINITION_ID
        for index, item in enumerate(items):
            name = (item.get("stream") or {}).get("name")
            config = item.get("config") or {}
            where = f"syncCatalog.streams.{index} ({name})"
            if not config.get("selected", True):
                continue
            if known is not None and name not in known:
                problems.append(f"{where}: the source has no such stream")
                continue
            stream = known.get(name) if known is not None else None
            mode = config.get("syncMode")
            if stream is not None and mode not in stream.supported_sync_modes:
                problems.append(f"{where}: sync mode {mode} is not supported")
            cursor_needed = stream is None or not stream.source_defined_cursor
            if mode == "incremental" and cursor_needed and not config.get("cursorField"):
                problems.append(f"{where}: incremental needs a cursorField")
            if s3 and config.get("destinationSyncMode") not in {"append", "overwrite"}:
                problems.append(f"{where}: destination-s3 supports append and overwrite only")
        return problems

    def _h_connection_create(self, body: dict[str, Any], query: Any) -> _Reply:
        with self._lock:
            source = self.sources.get(str(body.get("sourceId")))
            if source is None:
                return self._config_not_found("source", body.get("sourceId"))
            destination = self.destinations.get(str(body.get("destinationId")))
            if destination is None:
                return self._config_not_found("destination", body.get("destinationId"))
            catalog = list((body.get("syncCatalog") or {}).get("streams") or [])
            problems = self._check_catalog(source, destination, catalog)
            if source.workspace_id != destination.workspace_id:
                problems.append("source and destination are in different workspaces")
            if problems:
                return self._config_invalid(problems)
            connection = FakeConnection(
                str(uuid.uuid4()),
                str(body.get("name") or f"{source.name} <> {destination.name}"),
                source.workspace_id,
                str(body.get("status")),
                _selected(catalog),
                _source_folder(destination),
                source_id=source.actor_id,
                destination_id=destination.actor_id,
                catalog=catalog,
                namespace_definition=str(body.get("namespaceDefinition") or "source"),
                namespace_format=body.get("namespaceFormat"),
                prefix=str(body.get("prefix") or ""),
                schedule_type=str(body.get("scheduleType") or "manual"),
            )
            self.connections[connection.connection_id] = connection
            return _Reply(200, self._connection_read(connection))

    def _h_connection_update(self, body: dict[str, Any], query: Any) -> _Reply:
        connection_id = str(body.get("connectionId"))
        with self._lock:
            conn = self.connections.get(connection_id)
            if conn is None:
                return self._config_not_found("connection", connection_id)
            if body.get("syncCatalog") is not None:
                catalog = list(body["syncCatalog"].get("streams") or [])
                problems = self._check_catalog(
                    self.sources.get(conn.source_id), self.destinations.get(conn.destination_id), catalog
                )
                if problems:
                    return self._config_invalid(problems)
                conn.catalog = catalog
                conn.streams = _selected(catalog)
            for key, attr in (
                ("name", "name"),
                ("namespaceDefinition", "namespace_definition"),
                ("namespaceFormat", "namespace_format"),
                ("prefix", "prefix"),
                ("scheduleType", "schedule_type"),
                ("status", "status"),
            ):
                if body.get(key) is not None:
                    setattr(conn, attr, body[key])
            return _Reply(200, self._connection_read(conn))

    def _lookup_job(self, job_id: Any) -> FakeJob | None:
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            return None
        return self.jobs.get(job_id)

    def _h_job_get(self, body: dict[str, Any], *, logs: bool) -> _Reply:
        with self._lock:
            now = time.time()
            self._advance_all(now)
            job = self._lookup_job(body.get("id"))
            if job is None:
                return self._config_not_found("job", body.get("id"))
            return _Reply(200, self._job_info(job, now, logs=logs))

    def _h_job_get_light(self, body: dict[str, Any], query: Any) -> _Reply:
        with self._lock:
            now = time.time()
            self._advance_all(now)
            job = self._lookup_job(body.get("id"))
            if job is None:
                return self._config_not_found("job", body.get("id"))
            return _Reply(200, {"job": self._job_read(job, now, aggregated=False)})

    def _h_jobs_list(self, body: dict[str, Any], query: Any) -> _Reply:
        config_types = set(body.get("configTypes") or [])
        config_id = body.get("configId")
        statuses = set(body.get("statuses") or [])
        bounds = {
            key: _parse_iso(body[key])
            for key in ("createdAtStart", "createdAtEnd", "updatedAtStart", "updatedAtEnd")
            if body.get(key)
        }
        order_field = body.get("orderByField") or "createdAt"
        descending = (body.get("orderByMethod") or "DESC") == "DESC"
        pagination = body.get("pagination") or {}
        with self._lock:
            now = time.time()
            self._advance_all(now)
            found = [
                job
                for job in self.jobs.values()
                if job.config_type in config_types
                and (config_id is None or job.connection_id == config_id)
                and (not statuses or job.status in statuses)
                and _within(job.created_at, bounds.get("createdAtStart"), bounds.get("createdAtEnd"))
                and _within(job.updated_at, bounds.get("updatedAtStart"), bounds.get("updatedAtEnd"))
            ]
            key = (lambda j: (j.updated_at, j.id)) if order_field == "updatedAt" else (lambda j: (j.created_at, j.id))
            found.sort(key=key, reverse=descending)
            offset = int(pagination.get("rowOffset") or 0)
            size = pagination.get("pageSize")
            page = found[offset : offset + int(size)] if size is not None else found[offset:]
            jobs = [
                {
                    "job": self._job_read(job, now, aggregated=True),
                    "attempts": [self._attempt_read(job, a, now, in_progress=True) for a in job.attempts],
                }
                for job in page
            ]
            return _Reply(200, {"jobs": jobs, "totalJobCount": len(found)})

    def _h_cancel(self, job_id: Any, api: str) -> _Reply:
        with self._lock:
            now = time.time()
            self._advance_all(now)
            job = self._lookup_job(job_id)
            if job is None:
                return (
                    self._public_not_found("job", job_id) if api == "public" else self._config_not_found("job", job_id)
                )
            # Airbyte signals the connection's workflow: whatever runs for the connection is cancelled.
            target = job if not job.terminal else self._active_job(job.connection_id)
            if target is None:
                if api == "public":
                    return self._problem("state-conflict", "Job is not currently running")
                return self._config_internal("Job is not currently running")
            self._cancel_job(target, now)
            if api == "public":
                return _Reply(200, self._public_job(job, now))
            return _Reply(200, self._job_info(job, now, logs=True))

    def _h_config_token(self, body: dict[str, Any], query: Any) -> _Reply:
        token = self._issue_token(body.get("client_id"), body.get("client_secret"))
        if token is None:
            return self._micronaut(
                400, "Bad Request", "Invalid client id or token", f"{CONFIG_PREFIX}/applications/token"
            )
        return _Reply(200, {"access_token": token})

    # -- public API handlers -----------------------------------------------------------------------------------
    def _h_public_token(self, body: dict[str, Any], query: Any) -> _Reply:
        token = self._issue_token(body.get("client_id"), body.get("client_secret"))
        if token is None:
            return self._micronaut(
                400, "Bad Request", "Invalid client id or token", f"{PUBLIC_PREFIX}/applications/token"
            )
        expires_in = self.token_expires_in
        if expires_in is None:
            expires_in = math.ceil(self.token_ttl_seconds)
        return _Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})

    async def _h_public_create_job(self, body: dict[str, Any], query: Any) -> _Reply:
        job_type = body.get("jobType")
        if job_type == "refresh":
            return self._problem("unprocessable-entity", "Refreshes are not supported in the public API")
        return await self._trigger(str(body.get("connectionId")), "public", CONFIG_TYPES.get(str(job_type), "sync"))

    def _h_public_get_job(self, body: Any, query: Any, job_id: str) -> _Reply:
        with self._lock:
            now = time.time()
            self._advance_all(now)
            job = self._lookup_job(_int_or_none(job_id))
            if job is None:
                return self._public_not_found("job", job_id)
            return _Reply(200, self._public_job(job, now))

    def _h_public_list_jobs(self, body: Any, query: dict[str, list[str]]) -> _Reply:
        limit, offset = _paging(query)
        connection_id = _first(query, "connectionId")
        status = _first(query, "status")
        job_type = _first(query, "jobType")
        workspace_ids = set(_multi(query, "workspaceIds"))
        order_field, _, order_dir = (_first(query, "orderBy") or "createdAt|DESC").partition("|")
        bounds = {
            key: _parse_iso(value)
            for key in ("createdAtStart", "createdAtEnd", "updatedAtStart", "updatedAtEnd")
            if (value := _first(query, key))
        }
        with self._lock:
            now = time.time()
            self._advance_all(now)
            if connection_id is not None and connection_id not in self.connections:
                return self._public_not_found("connection", connection_id)
            found = [
                job
                for job in self.jobs.values()
                if (connection_id is None or job.connection_id == connection_id)
                and (status is None or job.status == status)
                and (job_type is None or PUBLIC_JOB_TYPES[job.config_type] == job_type)
                and (not workspace_ids or self.connections[job.connection_id].workspace_id in workspace_ids)
                and _within(job.created_at, bounds.get("createdAtStart"), bounds.get("createdAtEnd"))
                and _within(job.updated_at, bounds.get("updatedAtStart"), bounds.get("updatedAtEnd"))
            ]
            key = (lambda j: (j.updated_at, j.id)) if order_field == "updatedAt" else (lambda j: (j.created_at, j.id))
            found.sort(key=key, reverse=(order_dir or "DESC").upper() != "ASC")
            page = [self._public_job(job, now) for job in found[offset : offset + limit]]
        return _Reply(200, self._paged(f"{PUBLIC_PREFIX}/jobs", query, page, len(found), limit, offset))

    def _h_public_list_connections(self, body: Any, query: dict[str, list[str]]) -> _Reply:
        limit, offset = _paging(query)
        workspace_ids = set(_multi(query, "workspaceIds"))
        deleted = (_first(query, "includeDeleted") or "false").lower() == "true"
        with self._lock:
            found = [
                c
                for c in self.connections.values()
                if (not workspace_ids or c.workspace_id in workspace_ids) and (deleted or c.status != "deprecated")
            ]
            page = [self._public_connection(c) for c in found[offset : offset + limit]]
        return _Reply(200, self._paged(f"{PUBLIC_PREFIX}/connections", query, page, len(found), limit, offset))

    def _h_public_get_connection(self, body: Any, query: Any, connection_id: str) -> _Reply:
        with self._lock:
            conn = self.connections.get(connection_id)
            if conn is None:
                return self._public_not_found("connection", connection_id)
            return _Reply(200, self._public_connection(conn))

    def _h_public_list_workspaces(self, body: Any, query: dict[str, list[str]]) -> _Reply:
        limit, offset = _paging(query)
        workspace_ids = set(_multi(query, "workspaceIds"))
        deleted = (_first(query, "includeDeleted") or "false").lower() == "true"
        with self._lock:
            found = [
                w
                for w in self.workspaces.values()
                if (not workspace_ids or w.workspace_id in workspace_ids) and (deleted or not w.tombstone)
            ]
            page = [self._public_workspace(w) for w in found[offset : offset + limit]]
        return _Reply(200, self._paged(f"{PUBLIC_PREFIX}/workspaces", query, page, len(found), limit, offset))

    def _paged(
        self, path: str, query: dict[str, list[str]], page: list[Any], total: int, limit: int, offset: int
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"data": page}
        base = {k: v for k, v in query.items() if k not in {"limit", "offset"}}

        def link(new_offset: int) -> str:
            params = [(k, v) for k, values in base.items() for v in values]
            params += [("limit", str(limit)), ("offset", str(new_offset))]
            return f"{self.url}{path}?{urlencode(params)}"

        if offset + limit < total:
            body["next"] = link(offset + limit)
        if offset > 0:
            body["previous"] = link(max(0, offset - limit))
        return body


# -- helpers -------------------------------------------------------------------------------------------------------
def _fake_stream(stream: str | FakeStream) -> FakeStream:
    return stream if isinstance(stream, FakeStream) else FakeStream(stream)


def _discovered(stream: FakeStream) -> dict[str, Any]:
    """An AirbyteStreamAndConfiguration as discover returns it (config: the defaults)."""
    schema: dict[str, Any] = {
        "name": stream.name,
        "jsonSchema": STREAM_JSON_SCHEMA,
        "supportedSyncModes": list(stream.supported_sync_modes),
        "sourceDefinedCursor": stream.source_defined_cursor,
        "defaultCursorField": list(stream.default_cursor_field),
        "sourceDefinedPrimaryKey": [list(p) for p in stream.source_defined_primary_key],
        "isResumable": True,
    }
    if stream.namespace is not None:
        schema["namespace"] = stream.namespace
    incremental = "incremental" in stream.supported_sync_modes and bool(
        stream.source_defined_cursor or stream.default_cursor_field
    )
    config = {
        "syncMode": "incremental" if incremental else stream.supported_sync_modes[0],
        "destinationSyncMode": "append",
        "cursorField": list(stream.default_cursor_field),
        "primaryKey": [list(p) for p in stream.source_defined_primary_key],
        "aliasName": stream.name,
        "selected": True,
        "suggested": True,
    }
    return {"stream": schema, "config": config}


def _selected(catalog: list[dict[str, Any]]) -> list[str]:
    return [
        str((item.get("stream") or {}).get("name"))
        for item in catalog
        if (item.get("config") or {}).get("selected", True)
    ]


def _source_folder(destination: FakeActor) -> str:
    """The ``<source>`` of ``airbyte/<source>`` in the destination's bucket path (what the writer writes)."""
    path = str(destination.config.get("s3_bucket_path") or destination.name).strip("/")
    return path.rsplit("/", 1)[-1]


def _mask(config: dict[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """The configuration as Airbyte reads it back: secret values (at any depth) masked."""
    names = set(secrets)
    return {
        key: _mask(value, names) if isinstance(value, dict) else (SECRET_MASK if key in names else value)
        for key, value in config.items()
    }


def _unmask(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """An update's configuration with masked values replaced by the stored secrets (as Airbyte merges them)."""
    merged: dict[str, Any] = {}
    for key, value in new.items():
        old = stored.get(key)
        if isinstance(value, dict):
            merged[key] = _unmask(value, old if isinstance(old, dict) else {})
        elif value == SECRET_MASK and old is not None:
            merged[key] = old
        else:
            merged[key] = value
    return merged


def _masked_paths(config: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for key, value in config.items():
        if isinstance(value, dict):
            found += _masked_paths(value, f"{path}{key}.")
        elif value == SECRET_MASK:
            found.append(f"{path}{key}")
    return found


_AGG_KEYS = ("recordsEmitted", "bytesEmitted", "recordsCommitted", "bytesCommitted", "recordsRejected")


def _commits(outcome: Outcome) -> bool:
    """A failed attempt that committed its records before failing."""
    return isinstance(outcome, dict) and outcome.get("committed") is True


def _stats(emitted: int, committed: int | None = None) -> dict[str, int]:
    committed = emitted if committed is None else committed
    return {
        "recordsEmitted": emitted,
        "bytesEmitted": emitted * BYTES_PER_RECORD,
        "stateMessagesEmitted": 1 if emitted else 0,
        "recordsCommitted": committed,
        "bytesCommitted": committed * BYTES_PER_RECORD,
        "recordsRejected": 0,
    }


def _sum_stats(items: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for stats in items:
        for key, value in stats.items():
            total[key] = total.get(key, 0) + value
    return total or _stats(0)


def _stack(exception_class: str, message: str) -> list[str]:
    return [
        f"{exception_class}: {message}",
        "\tat io.airbyte.commons.server.handlers.SchedulerHandler.submitManualSyncToWorker(SchedulerHandler.kt:1)",
        "\tat io.airbyte.server.apis.controllers.ConnectionApiController.syncConnection(ConnectionApiController.kt:1)",
    ]


def _java_iso(epoch_seconds: int) -> str:
    """OffsetDateTime.toString() in UTC: seconds are left out when they are zero (``2025-01-15T00:00Z``)."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M")
    if moment.second:
        text += f":{moment.second:02d}"
    return text + "Z"


def _java_duration(seconds: int) -> str:
    """java.time.Duration.toString() for whole seconds (``PT8H6M12S``, ``PT0S``)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or text == "PT":
        text += f"{secs}S"
    return text


def _log_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_body(raw: bytes, content_type: str) -> tuple[Any, str | None]:
    if not raw.strip():
        return None, None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            return {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}, None
        except UnicodeDecodeError as exc:
            return None, f"form body is not UTF-8: {exc}"
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return None, f"not JSON ({media or 'no content type'}): {exc}"


def _parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _within(value: float, start: float | None, end: float | None) -> bool:
    return (start is None or value >= start) and (end is None or value <= end)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _multi(query: dict[str, list[str]], name: str) -> list[str]:
    return [part for value in query.get(name, []) for part in value.split(",") if part]


def _paging(query: dict[str, list[str]]) -> tuple[int, int]:
    limit = _int_or_none(_first(query, "limit"))
    offset = _int_or_none(_first(query, "offset"))
    return (20 if limit is None else limit), (0 if offset is None else offset)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- S3 destination writer -----------------------------------------------------------------------------------------
def airbyte_s3_writer(endpoint: S3Endpoint, bucket: str, rows_per_stream: int = 50) -> Writer:
    """A writer that lands real Parquet in the Airbyte S3 destination layout, one part per stream and job.

    Key: ``airbyte/<source_name>/<stream>/<YYYY>_<MM>_<DD>_<epoch_ms>_0.parquet`` (epoch = job start, UTC).
    Rows come from :class:`lakehouse_ingest.sources.embedded.records.RecordConverter` with ``sync_id = job.id`` and
    ``generation_id = 0`` over :data:`STREAM_JSON_SCHEMA`; objects carry ``x-amz-meta-ab-generation-id: 0``.
    """
    import pyarrow.parquet as pq

    from lakehouse_ingest.bronze.arrow_types import stream_columns
    from lakehouse_ingest.sources.embedded.records import RecordConverter

    columns = stream_columns(STREAM_JSON_SCHEMA)
    client = endpoint.boto3_client()
    client_lock = threading.Lock()

    def write(job: FakeJob, connection: FakeConnection) -> dict[str, int]:
        start = job.started_at or job.created_at
        start_ms = int(start * 1000)
        day = datetime.fromtimestamp(start, UTC)
        written: dict[str, int] = {}
        for stream in job.streams:
            converter = RecordConverter(stream, columns, sync_id=job.id, generation_id=0)
            emitted_ms = int(time.time() * 1000)
            lines = [
                json.dumps(
                    {
                        "type": "RECORD",
                        "record": {
                            "stream": stream,
                            "data": {
                                "id": index,
                                "name": f"{stream}-{index}",
                                "updated_at": datetime.fromtimestamp(start - index, UTC).isoformat(),
                            },
                            "emitted_at": emitted_ms,
                        },
                    }
                ).encode()
                for index in range(rows_per_stream)
            ]
            table = converter.convert(lines)
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="NONE")
            key = f"airbyte/{connection.source_name}/{stream}/{day:%Y_%m_%d}_{start_ms}_0.parquet"
            with client_lock:
                client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue(), Metadata={"ab-generation-id": "0"})
            written[stream] = table.num_rows
        return written

    return write
