"""The fake Airbyte as tests use it: :class:`FakeAirbyte` starts the server on loopback (uvicorn in a thread, and
the ticker that moves jobs along) and is how tests set it up, plan what goes wrong and look at what happened.

Its options and collections (``jobs``, ``requests``, ``spec_violations``, ...) live in the shared parts
(:class:`FakeOptions`, :class:`FakeState`); the facade reads and writes them there.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from starlette.applications import Starlette

from support.fake_airbyte.auth import Auth
from support.fake_airbyte.config_connections import ConfigConnections
from support.fake_airbyte.config_jobs import ConfigJobs
from support.fake_airbyte.config_provisioning import ConfigProvisioning
from support.fake_airbyte.gateway import Gateway
from support.fake_airbyte.job_machine import JobMachine, check_outcomes
from support.fake_airbyte.loopback import LoopbackServer
from support.fake_airbyte.public_api import PublicApi
from support.fake_airbyte.state import (
    DEFAULT_ORGANIZATION_ID,
    FAKER_DEFINITION_ID,
    S3_DEFINITION_ID,
    STATS_SHAPES,
    TERMINAL_STATUSES,
    WRITE_OPERATIONS,
    AfterPlan,
    AuthMode,
    ErrorStyle,
    FakeActor,
    FakeConnection,
    FakeDefinition,
    FakeJob,
    FakeOptions,
    FakeState,
    FakeStream,
    FakeWorkspace,
    Fault,
    Outcome,
    RecordedRequest,
    StatsShape,
    StatusReport,
    Tamper,
    Writer,
    fake_stream,
)
from support.openapi_check import CONFIG_PREFIX, PUBLIC_PREFIX, OpenApiChecker, default_checker


class _Via:
    """An attribute of the facade kept in one of its parts (``options`` or ``state``), read and written there."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, fake: Any, owner: type | None = None) -> Any:
        return self if fake is None else getattr(getattr(fake, self.part), self.name)

    def __set__(self, fake: Any, value: Any) -> None:
        setattr(getattr(fake, self.part), self.name, value)


class FakeAirbyte:
    """A fake Airbyte (Config API under ``url + "/api/v1"``, public API under ``url + "/api/public/v1"``).

    Beyond the brief's parameters: ``pending_seconds`` (time a job spends pending), ``retry_delay_seconds``
    (time in "incomplete" between attempts, default ``job_seconds / 2``), ``records_per_stream`` (stats when no
    writer is given), ``error_style`` ("v0" | "v1" | "head": the Config API's 404/409/500 bodies),
    ``token_expires_in`` (the ``expires_in`` the public token endpoint reports, default the real TTL) and
    ``checker`` (an :class:`OpenApiChecker`) and ``actor_page_size`` (``sources/list`` / ``destinations/list``
    answer pages of that size with ``page_size``, followed by ``cursor`` = the last id, as newer servers do).

    Server generations and odd answers (``tests/airbyte-payloads`` has real examples of each shape):
    ``stats_shape`` ("current" | "legacy_totals" | "prefixed" | "none": how jobs report their counts, see
    :data:`~support.fake_airbyte.state.StatsShape`; per connection with ``add_connection(stats_shape=...)`` or
    :meth:`set_stats_shape`) and ``token_status`` (the status both token endpoints answer with, e.g. 201 as
    dagster-airbyte's fixtures mock it; not what Airbyte answers, so recorded as injected).
    """

    # The constructor's options, and what the fake holds and saw.
    auth = _Via("options")
    username = _Via("options")
    password = _Via("options")
    token = _Via("options")
    client_id = _Via("options")
    client_secret = _Via("options")
    token_ttl_seconds = _Via("options")
    token_expires_in = _Via("options")
    job_seconds = _Via("options")
    queued_seconds = _Via("options")
    pending_seconds = _Via("options")
    retry_delay_seconds = _Via("options")
    records_per_stream = _Via("options")
    workspaces_list_removed = _Via("options")
    writer = _Via("options")
    error_style = _Via("options")
    checker = _Via("options")
    actor_page_size = _Via("options")
    stats_shape = _Via("options")
    token_status = _Via("options")
    workspaces = _Via("state")
    connections = _Via("state")
    sources = _Via("state")
    destinations = _Via("state")
    source_definitions = _Via("state")
    destination_definitions = _Via("state")
    jobs = _Via("state")
    requests = _Via("state")
    spec_violations = _Via("state")
    errors = _Via("state")

    def __init__(
        self,
        *,
        auth: AuthMode = "none",
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
        error_style: ErrorStyle = "v1",
        token_expires_in: int | None = None,
        checker: OpenApiChecker | None = None,
        actor_page_size: int | None = None,
        stats_shape: StatsShape = "current",
        token_status: int = 200,
    ) -> None:
        if auth not in {"none", "basic", "bearer", "client_credentials"}:
            raise ValueError(f"unknown auth mode {auth!r}")
        if error_style not in {"v0", "v1", "head"}:
            raise ValueError(f"unknown error style {error_style!r}")
        _check_shape(stats_shape)
        self.options = FakeOptions(
            auth=auth,
            username=username,
            password=password,
            token=token,
            client_id=client_id,
            client_secret=client_secret,
            token_ttl_seconds=token_ttl_seconds,
            token_expires_in=token_expires_in,
            job_seconds=job_seconds,
            queued_seconds=queued_seconds,
            pending_seconds=pending_seconds,
            retry_delay_seconds=job_seconds / 2 if retry_delay_seconds is None else retry_delay_seconds,
            records_per_stream=records_per_stream,
            workspaces_list_removed=workspaces_list_removed,
            writer=writer,
            error_style=error_style,
            checker=checker or default_checker(),
            actor_page_size=actor_page_size,  # sources/list and destinations/list page like newer servers
            stats_shape=stats_shape,
            token_status=token_status,
        )
        self.state = FakeState()
        self.machine = JobMachine(self.state, self.options)
        self._auth = Auth(self.options, self.state.lock)
        self.url = ""
        self.add_source_definition("Faker", definition_id=FAKER_DEFINITION_ID, secrets=("api_key",))
        self._stop = threading.Event()
        self._loopback: LoopbackServer | None = None
        self._server_thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None

    @property
    def _lock(self) -> threading.RLock:
        """The one lock of the fake's state (tests hold it to change objects the server reads)."""
        return self.state.lock

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
        self._loopback = LoopbackServer()
        self.url = self._loopback.url
        port = self._loopback.port
        self._server_thread = self._loopback.start(self._app(), name=f"fake-airbyte-{port}")
        self._ticker = threading.Thread(
            target=self.machine.run_ticker, args=(self._stop,), name=f"fake-airbyte-ticker-{port}", daemon=True
        )
        self._ticker.start()

    def _app(self) -> Starlette:
        """Both APIs' routes behind the gateway (the public API's page links need :attr:`url`)."""
        state, options = self.state, self.options
        jobs = ConfigJobs(state, self.machine, options, self._stop)
        config_routes = [
            *self._auth.config_routes(),
            *jobs.routes(),
            *ConfigConnections(state, options).routes(),
            *ConfigProvisioning(state, options).routes(),
        ]
        public_routes = [*self._auth.public_routes(), *PublicApi(state, self.machine, jobs, self.url).routes()]
        return Gateway(state, options, self._auth).app(config_routes, public_routes)

    def _shutdown(self) -> None:
        self._stop.set()
        if self._loopback is not None:
            self._loopback.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=10)

    # -- test setup API ----------------------------------------------------------------------------------------
    def add_workspace(self, name: str, *, organization_id: str = DEFAULT_ORGANIZATION_ID) -> str:
        workspace = FakeWorkspace(str(uuid.uuid4()), name, organization_id)
        with self.state.lock:
            self.state.workspaces[workspace.workspace_id] = workspace
        return workspace.workspace_id

    def add_connection(
        self,
        name: str,
        *,
        workspace_id: str | None = None,
        status: str = "active",
        streams: Iterable[str] = ("users",),
        source_name: str | None = None,
        prefix: str = "",
        namespace_definition: str = "customformat",
        namespace_format: str | None = None,
        stream_namespaces: dict[str, str] | None = None,
        sync_modes: dict[str, tuple[str, str]] | None = None,
        primary_keys: dict[str, list[list[str]]] | None = None,
        cursor_fields: dict[str, list[str]] | None = None,
        stats_shape: StatsShape | None = None,
    ) -> str:
        """A connection to destination-s3 writing under ``airbyte/<source_name>/`` (default its name); returns its id.

        By default as before: namespace = custom format ``source_name``, no prefix, every stream full refresh /
        append keyed by ``id``. Like a connection configured in the platform: ``prefix`` (prepended to each
        stream's name as the destination receives it), ``namespace_definition`` ("source" | "destination" |
        "customformat") and ``namespace_format`` (as stored; for "customformat" None means ``source_name``), per
        stream its source namespace (``stream_namespaces``), ``(syncMode, destinationSyncMode)`` (``sync_modes``),
        ``primary_keys`` and ``cursor_fields`` (incremental streams default to ``["updated_at"]``), and the server
        generation its jobs report counts as (``stats_shape``; None: the fake's).
        """
        if status not in {"active", "inactive", "deprecated", "locked"}:
            raise ValueError(f"unknown connection status {status!r}")
        if namespace_definition not in {"source", "destination", "customformat"}:
            raise ValueError(f"unknown namespace definition {namespace_definition!r} (the Config API's spelling)")
        if stats_shape is not None:
            _check_shape(stats_shape)
        streams = list(streams)
        for what, given in (
            ("stream_namespaces", stream_namespaces),
            ("sync_modes", sync_modes),
            ("primary_keys", primary_keys),
            ("cursor_fields", cursor_fields),
        ):
            unknown = set(given or {}) - set(streams)
            if unknown:
                raise ValueError(f"{what} names streams the connection does not have: {sorted(unknown)}")
        source_name = source_name or name
        if namespace_definition == "customformat" and namespace_format is None:
            namespace_format = source_name
        with self.state.lock:
            workspace_id = self._default_workspace(workspace_id)
            connection = FakeConnection(
                str(uuid.uuid4()),
                name,
                workspace_id,
                status,
                streams,
                source_name,
                namespace_definition=namespace_definition,
                namespace_format=namespace_format,
                prefix=prefix,
                stream_namespaces=dict(stream_namespaces or {}),
                sync_modes={k: (v[0], v[1]) for k, v in (sync_modes or {}).items()},
                primary_keys={k: [list(p) for p in v] for k, v in (primary_keys or {}).items()},
                cursor_fields={k: list(v) for k, v in (cursor_fields or {}).items()},
                stats_shape=stats_shape,
            )
            self.state.connections[connection.connection_id] = connection
        return connection.connection_id

    def set_sync_mode(self, connection_id: str, stream: str, sync_mode: str, destination_sync_mode: str) -> None:
        """Configure one stream of a connection, as a user editing it in the Airbyte UI would."""
        with self.state.lock:
            conn = self.state.connections[connection_id]
            if conn.catalog is None:
                conn.sync_modes[stream] = (sync_mode, destination_sync_mode)
                return
            for item in conn.catalog:
                if item["stream"]["name"] == stream:
                    item["config"].update(syncMode=sync_mode, destinationSyncMode=destination_sync_mode)

    def set_stats_shape(self, connection_id: str, shape: StatsShape | None) -> None:
        """How the connection's jobs report their counts from now on (None: as the fake does)."""
        if shape is not None:
            _check_shape(shape)
        with self.state.lock:
            self.state.connections[connection_id].stats_shape = shape

    def set_connection_status(self, connection_id: str, status: str) -> None:
        with self.state.lock:
            self.state.connections[connection_id].status = status

    def plan_attempts(self, connection_id: str, outcomes: list[Outcome]) -> None:
        """Outcomes of the attempts of the connection's next job ("succeeded" | "failed" | {"failed": {...}}).

        ``{"failed": {...}, "committed": True}``: the attempt writes its records (and Airbyte counts them as
        committed) before it fails, as a destination that flushed and checkpointed part of a sync does.
        """
        check_outcomes(outcomes)
        with self.state.lock:
            self.state.plans[connection_id] = list(outcomes)

    def stick_running(self, connection_id: str) -> None:
        """The connection's next job stays running until it is cancelled."""
        with self.state.lock:
            self.state.stuck.add(connection_id)

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
        fault = Fault(method.upper(), path_suffix.rstrip("/"), status, count, retry_after, body)
        with self.state.lock:
            self.state.faults.append(fault)

    def slow_trigger(self, seconds: float) -> None:
        """The next sync trigger starts the job at once but answers only after ``seconds``."""
        with self.state.lock:
            self.state.slow_triggers.append(seconds)

    def conflict_on_trigger(self, style: Literal["v0", "v1", "head", "public"]) -> None:
        """The next trigger answers 409 in ``style``'s body while a job of that connection is (made) running."""
        if style not in {"v0", "v1", "head", "public"}:
            raise ValueError(f"unknown conflict style {style!r}")
        with self.state.lock:
            self.state.forced_conflicts.append(style)

    def persistent_failure(
        self,
        method: str,
        path_suffix: str,
        status: int = 503,
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Every matching request gets ``status`` (as :meth:`fail_next`) until :meth:`clear_failures`."""
        fault = Fault(method.upper(), path_suffix.rstrip("/"), status, math.inf, retry_after, body)
        with self.state.lock:
            self.state.faults.append(fault)

    def clear_failures(self, method: str | None = None, path_suffix: str | None = None) -> int:
        """Forget the planned failures (of ``fail_next`` and ``persistent_failure``) matching the method and the
        path suffix (None: any); returns how many plans were dropped."""
        with self.state.lock:
            keep = [
                f
                for f in self.state.faults
                if not (
                    (method is None or f.method == method.upper())
                    and (path_suffix is None or f.suffix == path_suffix.rstrip("/"))
                )
            ]
            dropped = len(self.state.faults) - len(keep)
            self.state.faults = keep
        return dropped

    def empty_reply_next(self, method: str, path_suffix: str, status: int = 204, count: int = 1) -> None:
        """The next ``count`` matching requests are handled as usual (a cancel still cancels), then answered with
        ``status`` and an empty body, as a proxy in between may (research rule 6: Airbyte itself never answers
        204 on these endpoints); recorded as injected."""
        plan = AfterPlan(((method.upper(), path_suffix.rstrip("/")),), status, None, None, count)
        with self.state.lock:
            self.state.after_plans.append(plan)

    def fail_trigger_after_create(self, status: int = 502) -> None:
        """The next sync trigger (``connections/sync`` or public ``POST /jobs``) that creates a job does so (the job
        runs on), then is answered ``status`` (502 or 504: a gateway's HTML body) instead of the job: the client
        cannot tell whether a job exists (``startNewManualSync`` creates the job before it answers: research
        rule 5). Recorded as injected."""
        titles = {502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable", 504: "504 Gateway Time-out"}
        title = titles.get(status, f"{status} Error")
        html = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        routes = (("POST", f"{CONFIG_PREFIX}/connections/sync"), ("POST", f"{PUBLIC_PREFIX}/jobs"))
        plan = AfterPlan(routes, status, html, "text/html", 1, created_only=True)
        with self.state.lock:
            self.state.after_plans.append(plan)

    def report_status(self, job_or_connection: int | str, raw_status: str = "throttled", polls: int = 1) -> None:
        """The next ``polls`` reads of a job (``jobs/get``, ``jobs/get_without_logs``, ``jobs/get_light``, public
        ``GET /jobs/{id}``) show ``raw_status``, a status this client may not know, then the real one: "an unknown
        status that recovers". Lists show it too meanwhile (without counting); a cancel ends it.

        ``job_or_connection``: a job id, or a connection id (its running job, else its next job). Such replies are
        not validated (the spec does not know the status) and are recorded as injected.
        """
        if polls < 1:
            raise ValueError("polls must be at least 1")
        with self.state.lock:
            if isinstance(job_or_connection, int):
                job = self.state.jobs[job_or_connection]
                report = StatusReport(job.connection_id, job.id, raw_status, polls)
            else:
                if job_or_connection not in self.state.connections:
                    raise KeyError(f"unknown connection {job_or_connection}")
                active = self.state.active_job(job_or_connection)
                report = StatusReport(job_or_connection, active.id if active else None, raw_status, polls)
            self.state.status_reports.append(report)

    def start_reset(
        self, connection_id: str, *, seconds: float | None = None, config_type: str = "reset_connection"
    ) -> int:
        """Start a reset (a clear: Airbyte stores both as ``reset_connection``) of every stream of the connection, as
        the Airbyte UI would; it runs ``seconds`` (default ``job_seconds``) and writes nothing. Meanwhile a sync
        trigger answers 409 "A sync is already running for: <id>" (one workflow per connection). ``config_type
        ="refresh"`` starts a refresh instead (a replication job that writes like a sync). Returns the job id."""
        if config_type not in {"reset_connection", "refresh"}:
            raise ValueError(f"start_reset starts reset_connection or refresh jobs, not {config_type!r}")
        with self.state.lock:
            now = time.time()
            self.machine.advance_all(now)
            conn = self.state.connections[connection_id]
            running = self.state.active_job(connection_id)
            if running is not None:
                raise RuntimeError(f"job {running.id} is still running for connection {connection_id}")
            return self.machine.create_job(conn, now, config_type, run_seconds=seconds).id

    def list_twice(self, connection_id: str, *, workspace_id: str | None = None) -> None:
        """List the connection twice: without ``workspace_id``, public ``GET /connections`` returns it again right
        after itself (so on the next page when a page ends with it, as offset paging does when rows move);
        with ``workspace_id``, listings of that other workspace return it too (Config ``connections/list`` and
        public ``GET /connections?workspaceIds=``), as when one connection is reachable through two workspaces
        (``tests/airbyte-payloads/public_connections_list_duplicates.json``)."""
        with self.state.lock:
            if connection_id not in self.state.connections:
                raise KeyError(f"unknown connection {connection_id}")
            if workspace_id is not None and workspace_id not in self.state.workspaces:
                raise KeyError(f"unknown workspace {workspace_id}")
            self.state.listed_twice[connection_id] = workspace_id

    def omit_attempt_ids(self, connection_id: str) -> None:
        """``jobs/get`` answers for the connection's jobs carry attempts without ``id`` (a fixture shape: dagster-
        airbyte's legacy ``dagster_airbyte_tests/utils.py``; the spec requires the id): recorded as injected."""
        with self.state.lock:
            self.state.connections[connection_id].attempt_ids = False

    def expire_tokens(self) -> None:
        """Every token issued so far is invalid (401) from now on."""
        self._auth.expire_tokens()

    def tamper_next(self, method: str, path_suffix: str, mutate: Callable[[Any], Any]) -> None:
        """Pass the next matching response body through ``mutate`` before it is validated and sent (self-tests)."""
        with self.state.lock:
            self.state.tampers.append(Tamper(method.upper(), path_suffix.rstrip("/"), mutate))

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
            [fake_stream(s) for s in streams],
        )
        with self.state.lock:
            self.state.source_definitions[definition.definition_id] = definition
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
        with self.state.lock:
            workspace_id = self._default_workspace(workspace_id)
            definition = self.state.source_definitions[definition_id]
            found = [fake_stream(s) for s in streams] if streams is not None else list(definition.streams)
            source = FakeActor(str(uuid.uuid4()), name, workspace_id, definition_id, dict(config or {}), streams=found)
            self.state.sources[source.actor_id] = source
        return source.actor_id

    def set_source_streams(self, source_id: str, streams: Iterable[str | FakeStream]) -> None:
        """What the source discovers from now on."""
        with self.state.lock:
            self.state.sources[source_id].streams = [fake_stream(s) for s in streams]

    def fail_discover(self, source_id: str, message: str | None) -> None:
        """Discover of the source fails with ``message`` (None: works again)."""
        with self.state.lock:
            self.state.sources[source_id].discover_error = message

    def add_destination(
        self,
        name: str,
        config: dict[str, Any],
        *,
        workspace_id: str | None = None,
        definition_id: str = S3_DEFINITION_ID,
    ) -> str:
        """A configured destination; returns its id."""
        with self.state.lock:
            workspace_id = self._default_workspace(workspace_id)
            destination = FakeActor(str(uuid.uuid4()), name, workspace_id, definition_id, dict(config))
            self.state.destinations[destination.actor_id] = destination
        return destination.actor_id

    def write_requests(self) -> list[RecordedRequest]:
        """Requests that create or update sources, destinations or connections."""
        with self.state.lock:
            return [r for r in self.state.requests if r.method == "POST" and r.path.rstrip("/") in WRITE_OPERATIONS]

    def _default_workspace(self, workspace_id: str | None) -> str:
        if workspace_id is None:
            return next(iter(self.state.workspaces), None) or self.add_workspace("Default Workspace")
        if workspace_id not in self.state.workspaces:
            raise KeyError(f"unknown workspace {workspace_id}")
        return workspace_id

    # -- inspection helpers ------------------------------------------------------------------------------------
    def job(self, job_id: int) -> FakeJob:
        with self.state.lock:
            return self.state.jobs[job_id]

    def jobs_for(self, connection_id: str) -> list[FakeJob]:
        with self.state.lock:
            return [job for job in self.state.jobs.values() if job.connection_id == connection_id]

    def wait_for_job(self, job_id: int, statuses: Iterable[str] = TERMINAL_STATUSES, timeout: float = 10) -> FakeJob:
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            with self.state.lock:
                self.machine.advance_all(time.time())
                job = self.state.jobs[job_id]
                if job.status in wanted:
                    return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is {job.status}, not in {sorted(wanted)} after {timeout}s")
            time.sleep(0.005)

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[RecordedRequest]:
        with self.state.lock:
            return [
                r
                for r in self.state.requests
                if r.path.rstrip("/").endswith(path_suffix.rstrip("/"))
                and (method is None or r.method == method.upper())
            ]


def _check_shape(shape: str) -> None:
    if shape not in STATS_SHAPES:
        raise ValueError(f"unknown stats shape {shape!r} (one of {sorted(STATS_SHAPES)})")
