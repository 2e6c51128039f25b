"""The Config API (``<AIRBYTE_URL>/api/v1``): RPC-style POSTs, and the richest answers (per-stream stats,
attempt logs). Its job and connection operations mirror ``public_api``'s; ``client`` picks one of the two.

Provisioning (``provisioning``) always goes through this API, whatever ``AIRBYTE_API`` says, and so do the
attempt logs (the public API has none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from lakehouse_ingest.sources.airbyte.connections import Connection, Workspace
from lakehouse_ingest.sources.airbyte.errors import AirbyteRequestError, connection_not_found
from lakehouse_ingest.sources.airbyte.http import Http
from lakehouse_ingest.sources.airbyte.jobs import NON_TERMINAL_STATUSES, Job
from lakehouse_ingest.sources.airbyte.pages import config_pages

if TYPE_CHECKING:
    from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings

# The organization of a self-managed server (``workspaces/list_by_organization_id`` needs one).
OSS_DEFAULT_ORGANIZATION = "00000000-0000-0000-0000-000000000000"
# Jobs that read the source and write into bronze, and every job type that keeps a connection busy (one workflow per
# connection runs them all, so a sync trigger answers 409 while any runs: airbyte-platform TemporalClient.kt).
WRITING_JOBS = ["sync", "refresh"]
BUSY_JOBS = ["sync", "refresh", "reset_connection", "clear"]
T = TypeVar("T")


def _jobs(body: dict[str, Any]) -> list[Job]:
    return [Job.from_config_api(j) for j in body.get("jobs") or []]


class ConfigApi:
    """Jobs, connections and workspaces through ``/api/v1``."""

    def __init__(self, http: Http, settings: AirbyteSettings) -> None:
        self.http = http
        self.base = settings.config_base
        self.slow_timeout = settings.trigger_timeout  # for calls that run a job before answering

    def post(
        self,
        path: str,
        body: Any,
        *,
        parse: Callable[[Any], T] | None = None,
        timeout: float | None = None,
        retry: bool = True,
        connection_id: str | None = None,
        job_id: int | None = None,
        empty_ok: bool = False,
    ) -> Any:
        """POST ``body`` to ``<base>/<path>``: every Config API call is one (see ``Http.request``)."""
        return self.http.request(
            "POST",
            f"{self.base}/{path}",
            parse=parse,
            json=body,
            timeout=timeout,
            retry=retry,
            connection_id=connection_id,
            job_id=job_id,
            empty_ok=empty_ok,
        )

    # -- jobs -------------------------------------------------------------------------------------------------
    def trigger(self, connection_id: str) -> Job:
        """Start a sync (never retried: a lost answer does not mean no job was created)."""
        body = {"connectionId": connection_id}
        return self.post(  # type: ignore[no-any-return]
            "connections/sync",
            body,
            parse=Job.from_config_api,
            connection_id=connection_id,
            timeout=self.slow_timeout,
            retry=False,
        )

    def get_job(self, job_id: int) -> Job:
        """The job with its attempts and per-stream stats."""
        return self.post("jobs/get_without_logs", {"id": job_id}, parse=Job.from_config_api, job_id=job_id)  # type: ignore[no-any-return]

    def running_jobs(self, connection_id: str) -> list[Job]:
        """The connection's jobs of every type that keeps it busy, as the server lists unfinished ones (newest 20)."""
        request = {
            "configTypes": BUSY_JOBS,
            "configId": connection_id,
            "statuses": [*NON_TERMINAL_STATUSES, "queued"],
            "pagination": {"pageSize": 20, "rowOffset": 0},
        }
        try:
            return self.post("jobs/list", request, parse=_jobs, connection_id=connection_id)  # type: ignore[no-any-return]
        except AirbyteRequestError:  # servers before the `queued` status reject it in the filter
            request["statuses"] = list(NON_TERMINAL_STATUSES)
            return self.post("jobs/list", request, parse=_jobs, connection_id=connection_id)  # type: ignore[no-any-return]

    def job_pages(self, connection_id: str, page_size: int) -> Iterator[list[Job]]:
        """The connection's sync and refresh jobs in any status, newest first, page by page."""
        request = {"configTypes": WRITING_JOBS, "configId": connection_id}
        url = f"{self.base}/jobs/list"
        for page in config_pages(self.http, url, request, "jobs", page_size, connection_id):
            yield [Job.from_config_api(j) for j in page]

    def cancel(self, job_id: int) -> Job | None:
        """Ask the server to cancel the job; None when it accepted with an empty answer (a proxy in between)."""
        job: Job | None = self.post(
            "jobs/cancel", {"id": job_id}, parse=Job.from_config_api, job_id=job_id, empty_ok=True
        )
        return job

    def job_logs(self, job_id: int) -> list[tuple[int, list[str]]]:
        """Each attempt's log lines (``jobs/get``); an attempt without an id is numbered by its position."""
        body = self.post("jobs/get", {"id": job_id}, job_id=job_id)
        found = []
        for position, item in enumerate(body.get("attempts") or []):
            number = (item.get("attempt") or {}).get("id")
            number = int(number) if number is not None else position
            logs = item.get("logs") or {}
            lines = logs.get("logLines") or [str(e.get("message", e)) for e in logs.get("events") or []]
            found.append((number, [str(line) for line in lines]))
        return found

    # -- connections and workspaces -----------------------------------------------------------------------------
    def get_connection(self, connection_id: str) -> Connection:
        """The connection; ConnectionNotFoundError for an unknown id."""
        return Connection.from_config_api(self.read_connection(connection_id))

    def read_connection(self, connection_id: str) -> dict[str, Any]:
        """``connections/get`` (the raw ConnectionRead, which provisioning reads too)."""
        with connection_not_found(connection_id):
            raw: dict[str, Any] = self.post(
                "connections/get", {"connectionId": connection_id}, connection_id=connection_id
            )
        return raw

    def workspaces(self) -> list[Workspace]:
        """Every workspace the credentials see (``workspaces/list`` was removed in 1.7: fall back)."""
        try:
            body = self.post("workspaces/list", {})
            return [Workspace.from_api(w) for w in body.get("workspaces") or []]
        except AirbyteRequestError as exc:
            if exc.http_status != 404:
                raise
        url = f"{self.base}/workspaces/list_by_organization_id"
        request = {"organizationId": OSS_DEFAULT_ORGANIZATION}
        return [Workspace.from_api(w) for page in config_pages(self.http, url, request, "workspaces") for w in page]

    def connections(self, workspace_id: str) -> list[Connection]:
        """The connections of one workspace."""
        return [Connection.from_config_api(c) for c in self.list_connections(workspace_id)]

    def list_connections(self, workspace_id: str) -> list[dict[str, Any]]:
        """``connections/list`` (the raw ConnectionReads, which provisioning reads too)."""
        body = self.post("connections/list", {"workspaceId": workspace_id})
        connections: list[dict[str, Any]] = body.get("connections") or []
        return connections
