"""The Airbyte API client: HTTP only, typed results, one place that turns failures into errors.

Both API families sit behind the same methods: the Config API (``/api/v1``, RPC-style POSTs; the richest:
per-stream stats, logs) and the public API (``/api/public/v1`` self-managed, ``https://api.airbyte.com/v1``
on Cloud). Idempotent calls (reads, lists, cancel) retry transient failures (5xx, 429 with Retry-After,
connection errors) with bounded backoff; the sync trigger never retries (see ``syncs``). Build one with
``AirbyteSettings.client()`` (``settings``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from lakehouse_ingest.sources.airbyte.connections import Connection, Workspace
from lakehouse_ingest.sources.airbyte.errors import (
    AirbyteAuthError,
    AirbyteConflictError,
    AirbyteError,
    AirbyteRequestError,
    AirbyteTimeoutError,
    AirbyteTransientError,
    ConnectionInactiveError,
    ConnectionNotFoundError,
)
from lakehouse_ingest.sources.airbyte.jobs import NON_TERMINAL_STATUSES, Job
from lakehouse_ingest.sources.airbyte.provisioning_models import (
    Actor,
    ActorDefinition,
    ActorKind,
    ConnectionConfig,
    DiscoveredCatalog,
)

if TYPE_CHECKING:
    from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings

OSS_DEFAULT_ORGANIZATION = "00000000-0000-0000-0000-000000000000"
PAGE_SIZE = 100


class AirbyteClient:
    """One ``httpx.Client`` per server; methods named after what they do, returning typed records."""

    def __init__(
        self,
        settings: AirbyteSettings,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.requests_sent = 0
        self._sleep = sleep
        self._http = httpx.Client(
            auth=settings.auth(),
            timeout=httpx.Timeout(settings.request_timeout, connect=10.0),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "airbyte-lakehouse"},
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> AirbyteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------------
    def trigger_sync(self, connection_id: str) -> Job:
        """Start a sync (never retried here: a lost answer does not mean no job was created)."""
        timeout = httpx.Timeout(self.settings.trigger_timeout, connect=10.0)
        if self.settings.api == "public":
            body = self._call(
                "POST",
                f"{self.settings.public_base}/jobs",
                connection_id=connection_id,
                json={"connectionId": connection_id, "jobType": "sync"},
                timeout=timeout,
                retry=False,
            )
            return Job.from_public_api(body)
        body = self._call(
            "POST",
            f"{self.settings.config_base}/connections/sync",
            connection_id=connection_id,
            json={"connectionId": connection_id},
            timeout=timeout,
            retry=False,
        )
        return Job.from_config_api(body)

    def get_job(self, job_id: int) -> Job:
        """The job's current state (with per-stream stats on the Config API)."""
        if self.settings.api == "public":
            return Job.from_public_api(self._call("GET", f"{self.settings.public_base}/jobs/{job_id}", job_id=job_id))
        body = self._call(
            "POST", f"{self.settings.config_base}/jobs/get_without_logs", json={"id": job_id}, job_id=job_id
        )
        return Job.from_config_api(body)

    def running_jobs(self, connection_id: str) -> list[Job]:
        """The connection's jobs that are not finished yet, newest first."""
        if self.settings.api == "public":
            params = {"connectionId": connection_id, "jobType": "sync", "limit": 20, "orderBy": "createdAt|DESC"}
            body = self._call("GET", f"{self.settings.public_base}/jobs", params=params, connection_id=connection_id)
            jobs = [Job.from_public_api(j) for j in body.get("data") or []]
        else:
            request = {
                "configTypes": ["sync"],
                "configId": connection_id,
                "statuses": [*NON_TERMINAL_STATUSES, "queued"],
                "pagination": {"pageSize": 20, "rowOffset": 0},
            }
            try:
                body = self._call(
                    "POST", f"{self.settings.config_base}/jobs/list", json=request, connection_id=connection_id
                )
            except AirbyteRequestError:  # servers before the `queued` status reject it in the filter
                request["statuses"] = list(NON_TERMINAL_STATUSES)
                body = self._call(
                    "POST", f"{self.settings.config_base}/jobs/list", json=request, connection_id=connection_id
                )
            jobs = [Job.from_config_api(j) for j in body.get("jobs") or []]
        running = [j for j in jobs if not j.terminal and j.connection_id in ("", connection_id)]
        return sorted(running, key=lambda j: (j.created_at, j.id), reverse=True)

    def jobs_after(self, connection_id: str, after_job_id: int, page_size: int = 50) -> list[Job]:
        """The connection's sync jobs with an id above ``after_job_id``, in any status, oldest first.

        Pages newest first until a page reaches ``after_job_id`` or ends (job ids grow with creation time).
        """
        found: list[Job] = []
        offset = 0
        while True:
            page = self._jobs_page(connection_id, page_size, offset)
            found += [j for j in page if j.id > after_job_id and j.connection_id in ("", connection_id)]
            if len(page) < page_size or any(j.id <= after_job_id for j in page):
                return sorted(found, key=lambda j: j.id)
            offset += page_size

    def _jobs_page(self, connection_id: str, limit: int, offset: int) -> list[Job]:
        """One page of the connection's sync jobs, newest first."""
        if self.settings.api == "public":
            params = {
                "connectionId": connection_id,
                "jobType": "sync",
                "limit": limit,
                "offset": offset,
                "orderBy": "createdAt|DESC",
            }
            body = self._call("GET", f"{self.settings.public_base}/jobs", params=params, connection_id=connection_id)
            return [Job.from_public_api(j) for j in body.get("data") or []]
        request = {
            "configTypes": ["sync"],
            "configId": connection_id,
            "pagination": {"pageSize": limit, "rowOffset": offset},
        }
        body = self._call("POST", f"{self.settings.config_base}/jobs/list", json=request, connection_id=connection_id)
        return [Job.from_config_api(j) for j in body.get("jobs") or []]

    def cancel_job(self, job_id: int) -> Job:
        """Ask the server to cancel the job."""
        if self.settings.api == "public":
            return Job.from_public_api(
                self._call("DELETE", f"{self.settings.public_base}/jobs/{job_id}", job_id=job_id)
            )
        return Job.from_config_api(
            self._call("POST", f"{self.settings.config_base}/jobs/cancel", json={"id": job_id}, job_id=job_id)
        )

    def job_logs(self, job_id: int) -> list[tuple[int, list[str]]]:
        """Each attempt's log lines (Config API ``jobs/get``; the public API has no logs)."""
        body = self._call("POST", f"{self.settings.config_base}/jobs/get", json={"id": job_id}, job_id=job_id)
        found = []
        for item in body.get("attempts") or []:
            number = int((item.get("attempt") or {}).get("id") or 0)
            logs = item.get("logs") or {}
            lines = logs.get("logLines") or [str(e.get("message", e)) for e in logs.get("events") or []]
            found.append((number, [str(line) for line in lines]))
        return found

    # -- connections and workspaces -----------------------------------------------------------------
    def get_connection(self, connection_id: str) -> Connection:
        """The connection; ConnectionNotFoundError for an unknown id."""
        if self.settings.api == "public":
            with _connection_not_found(connection_id):
                raw = self._call(
                    "GET", f"{self.settings.public_base}/connections/{connection_id}", connection_id=connection_id
                )
            return Connection.from_public_api(raw)
        return Connection.from_config_api(self._config_connection(connection_id))

    def workspace_ids(self) -> list[str]:
        """Every workspace the credentials see (``workspaces/list`` was removed in 1.7: fall back)."""
        return [w.id for w in self.workspaces()]

    def workspaces(self) -> list[Workspace]:
        """Every workspace the credentials see, with its name."""
        if self.settings.api == "public":
            return [_workspace(w) for w in self._pages(f"{self.settings.public_base}/workspaces", {})]
        try:
            body = self._call("POST", f"{self.settings.config_base}/workspaces/list", json={})
            return [_workspace(w) for w in body.get("workspaces") or []]
        except AirbyteRequestError as exc:
            if exc.http_status != 404:
                raise
        found: list[Workspace] = []
        offset = 0
        while True:
            request = {
                "organizationId": OSS_DEFAULT_ORGANIZATION,
                "pagination": {"pageSize": PAGE_SIZE, "rowOffset": offset},
            }
            page = (
                self._call("POST", f"{self.settings.config_base}/workspaces/list_by_organization_id", json=request).get(
                    "workspaces"
                )
                or []
            )
            found.extend(_workspace(w) for w in page)
            if len(page) < PAGE_SIZE:
                return found
            offset += PAGE_SIZE

    def connections(self, workspace_id: str) -> list[Connection]:
        """The connections of one workspace."""
        if self.settings.api == "public":
            params = {"workspaceIds": workspace_id}
            return [
                Connection.from_public_api(c) for c in self._pages(f"{self.settings.public_base}/connections", params)
            ]
        body = self._call("POST", f"{self.settings.config_base}/connections/list", json={"workspaceId": workspace_id})
        return [Connection.from_config_api(c) for c in body.get("connections") or []]

    def find_connection(self, name: str) -> Connection:
        """The one connection called ``name`` across all workspaces."""
        matches = [c for w in self.workspace_ids() for c in self.connections(w) if c.name == name]
        if not matches:
            raise ConnectionNotFoundError(f"no connection named {name!r} on the Airbyte server")
        if len(matches) > 1:
            raise ConnectionNotFoundError(f"{len(matches)} connections are named {name!r}; use connection_id")
        return matches[0]

    # -- provisioning: sources, destinations, connections (Config API) ----------------------------------
    # Always the Config API (``<AIRBYTE_URL>/api/v1``), whatever ``AIRBYTE_API`` says: it discovers a source's
    # catalog with sync modes, cursors and keys, and reads connections in the shape the runtime already parses.
    # Creates are never retried (a lost answer may still have created the object); updates and reads are.
    def destination_definitions(self, workspace_id: str) -> list[ActorDefinition]:
        """The destination connectors the workspace can use."""
        body = self._call(
            "POST",
            f"{self.settings.config_base}/destination_definitions/list_for_workspace",
            json={"workspaceId": workspace_id},
        )
        return [ActorDefinition.from_destination_read(d) for d in body.get("destinationDefinitions") or []]

    def actors(self, kind: ActorKind, workspace_id: str) -> list[Actor]:
        """The workspace's sources or destinations (secrets masked by the server)."""
        return [Actor.from_read(kind, d) for d in self._actor_pages(kind, workspace_id)]

    def create_actor(
        self, kind: ActorKind, workspace_id: str, name: str, definition_id: str, configuration: dict[str, Any]
    ) -> Actor:
        """Create a source or destination (never retried)."""
        request = {
            "workspaceId": workspace_id,
            "name": name,
            f"{kind}DefinitionId": definition_id,
            "connectionConfiguration": configuration,
        }
        body = self._call("POST", f"{self.settings.config_base}/{kind}s/create", json=request, retry=False)
        return Actor.from_read(kind, body)

    def update_actor(self, kind: ActorKind, actor_id: str, name: str, configuration: dict[str, Any]) -> Actor:
        """Replace a source's or destination's name and configuration (a masked secret keeps the stored value)."""
        request = {f"{kind}Id": actor_id, "name": name, "connectionConfiguration": configuration}
        body = self._call("POST", f"{self.settings.config_base}/{kind}s/update", json=request)
        return Actor.from_read(kind, body)

    def discover_source(self, source_id: str) -> DiscoveredCatalog:
        """Run discover on an existing source (not cached: a stream added upstream must show)."""
        body = self._call(
            "POST",
            f"{self.settings.config_base}/sources/discover_schema",
            json={"sourceId": source_id, "disable_cache": True},
            timeout=httpx.Timeout(self.settings.trigger_timeout, connect=10.0),
        )
        return _discovered(body, f"source {source_id}")

    def discover_source_config(
        self, workspace_id: str, definition_id: str, configuration: dict[str, Any]
    ) -> DiscoveredCatalog:
        """Run discover on a configuration without creating a source (``scheduler/sources/discover_schema``)."""
        request = {
            "workspaceId": workspace_id,
            "sourceDefinitionId": definition_id,
            "connectionConfiguration": configuration,
        }
        body = self._call(
            "POST",
            f"{self.settings.config_base}/scheduler/sources/discover_schema",
            json=request,
            timeout=httpx.Timeout(self.settings.trigger_timeout, connect=10.0),
        )
        return _discovered(body, f"source definition {definition_id}")

    def _actor_pages(self, kind: ActorKind, workspace_id: str) -> list[dict[str, Any]]:
        """Every source or destination of the workspace: servers that page the list (their answer carries
        ``page_size``) are followed with ``cursor`` = the last id seen, so no object is missed."""
        id_key = f"{kind}Id"
        request: dict[str, Any] = {"workspaceId": workspace_id}
        found: dict[str, dict[str, Any]] = {}
        while True:
            body = self._call("POST", f"{self.settings.config_base}/{kind}s/list", json=request)
            page = body.get(f"{kind}s") or []
            new = [item for item in page if item[id_key] not in found]
            found.update((item[id_key], item) for item in new)
            size = body.get("page_size")
            if not new or not isinstance(size, int) or size <= 0 or len(page) < size:
                return list(found.values())
            request = {"workspaceId": workspace_id, "pageSize": size, "cursor": page[-1][id_key]}

    def connection_configs(self, workspace_id: str) -> list[ConnectionConfig]:
        """The workspace's connections, as provisioning compares them."""
        body = self._call("POST", f"{self.settings.config_base}/connections/list", json={"workspaceId": workspace_id})
        return [ConnectionConfig.from_config_api(c) for c in body.get("connections") or []]

    def connection_config(self, connection_id: str) -> ConnectionConfig:
        """One connection's configuration; ConnectionNotFoundError for an unknown id."""
        return ConnectionConfig.from_config_api(self._config_connection(connection_id))

    def _config_connection(self, connection_id: str) -> dict[str, Any]:
        """``connections/get`` of the Config API (the raw ConnectionRead)."""
        with _connection_not_found(connection_id):
            raw: dict[str, Any] = self._call(
                "POST",
                f"{self.settings.config_base}/connections/get",
                json={"connectionId": connection_id},
                connection_id=connection_id,
            )
        return raw

    def create_connection(self, request: dict[str, Any]) -> ConnectionConfig:
        """Create a connection from a ConnectionCreate body (never retried)."""
        body = self._call("POST", f"{self.settings.config_base}/connections/create", json=request, retry=False)
        return ConnectionConfig.from_config_api(body)

    def update_connection(self, request: dict[str, Any]) -> ConnectionConfig:
        """Patch a connection with a ConnectionUpdate body (a catalog in it replaces the whole catalog)."""
        connection_id = str(request.get("connectionId"))
        body = self._call(
            "POST", f"{self.settings.config_base}/connections/update", json=request, connection_id=connection_id
        )
        return ConnectionConfig.from_config_api(body)

    # -- transport ----------------------------------------------------------------------------------
    def _pages(self, url: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self._call("GET", url, params={**params, "limit": PAGE_SIZE, "offset": offset})
            data = body.get("data") or []
            yield from data
            if not body.get("next") or len(data) < PAGE_SIZE:
                return
            offset += PAGE_SIZE

    def _call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: httpx.Timeout | None = None,
        retry: bool = True,
        connection_id: str | None = None,
        job_id: int | None = None,
    ) -> Any:
        """Send one request, retrying transient failures when ``retry``; the only place errors are made."""
        attempts = 1 + (self.settings.max_retries if retry else 0)
        for attempt in range(attempts):
            try:
                return self._send_once(method, url, json, params, timeout, connection_id, job_id)
            except AirbyteTransientError as exc:
                if attempt + 1 >= attempts:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                self._sleep(min(delay, 60.0))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        base = self.settings.backoff_seconds * (2**attempt)
        return float(min(base, 10.0) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto

    def _send_once(
        self,
        method: str,
        url: str,
        json: Any,
        params: dict[str, Any] | None,
        timeout: httpx.Timeout | None,
        connection_id: str | None,
        job_id: int | None,
    ) -> Any:
        context: dict[str, Any] = {"method": method, "url": url, "connection_id": connection_id, "job_id": job_id}
        self.requests_sent += 1
        try:
            kwargs: dict[str, Any] = {"json": json, "params": params}
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise AirbyteTimeoutError(f"no answer in time ({type(exc).__name__})", **context) from exc
        except httpx.TransportError as exc:
            raise AirbyteTransientError(f"cannot reach the Airbyte server ({type(exc).__name__})", **context) from exc
        if response.is_success:
            return response.json() if response.content else {}
        raise _error_for(response, context)


def _error_for(response: httpx.Response, context: dict[str, Any]) -> AirbyteError:
    status = response.status_code
    body = response.text
    context = {**context, "http_status": status, "body": body}
    if status in (401, 403):
        return AirbyteAuthError("the Airbyte server refused the credentials", **context)
    if status == 409:
        return AirbyteConflictError("the Airbyte server reported a conflict", **context)
    if status == 429 or status >= 500:
        if "can only sync an active connection" in body.lower():
            return ConnectionInactiveError("the connection is not active", **context)
        return AirbyteTransientError(
            f"the Airbyte server answered {status}", retry_after=_retry_after(response), **context
        )
    return AirbyteRequestError(f"the Airbyte server rejected the request ({status})", **context)


def _workspace(raw: dict[str, Any]) -> Workspace:
    return Workspace.from_api(raw)


def _discovered(body: dict[str, Any], what: str) -> DiscoveredCatalog:
    """The catalog of a SourceDiscoverSchemaRead; AirbyteError with the job's failure when discover failed."""
    job = body.get("jobInfo") or {}
    if not job.get("succeeded", True) or body.get("catalog") is None:
        failure = job.get("failureReason") or {}
        reason = failure.get("externalMessage") or failure.get("internalMessage") or "no catalog returned"
        raise AirbyteError(f"discovering the schema of {what} failed: {reason}")
    return DiscoveredCatalog.from_config_api(body)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


@contextmanager
def _connection_not_found(connection_id: str) -> Iterator[None]:
    """A 404/422 on a connection read becomes ConnectionNotFoundError (other errors pass through)."""
    try:
        yield
    except AirbyteRequestError as exc:
        if exc.http_status in (404, 422):
            raise ConnectionNotFoundError(
                "no such connection on the Airbyte server", connection_id=connection_id, http_status=exc.http_status
            ) from exc
        raise
