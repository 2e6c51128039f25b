"""The public API (``/api/public/v1`` on a self-managed server, ``https://api.airbyte.com/v1`` on Cloud):
REST resources, totals only (no per-stream stats, no logs). Its job and connection operations mirror
``config_api``'s; ``client`` picks one of the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lakehouse_ingest.sources.airbyte.connections import Connection, Workspace
from lakehouse_ingest.sources.airbyte.errors import connection_not_found
from lakehouse_ingest.sources.airbyte.http import Http
from lakehouse_ingest.sources.airbyte.jobs import Job
from lakehouse_ingest.sources.airbyte.pages import public_pages

if TYPE_CHECKING:
    from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings

NEWEST_FIRST = "createdAt|DESC"


def _jobs(body: dict[str, Any]) -> list[Job]:
    return [Job.from_public_api(j) for j in body.get("data") or []]


class PublicApi:
    """Jobs, connections and workspaces through the public API."""

    def __init__(self, http: Http, settings: AirbyteSettings) -> None:
        self.http = http
        self.base = settings.public_base
        self.slow_timeout = settings.trigger_timeout  # the trigger answers once the job runs

    # -- jobs -------------------------------------------------------------------------------------------------
    def trigger(self, connection_id: str) -> Job:
        """Start a sync (never retried: a lost answer does not mean no job was created)."""
        return self.http.request(
            "POST",
            f"{self.base}/jobs",
            parse=Job.from_public_api,
            json={"connectionId": connection_id, "jobType": "sync"},
            timeout=self.slow_timeout,
            retry=False,
            connection_id=connection_id,
        )

    def get_job(self, job_id: int) -> Job:
        """The job's status and totals."""
        return self.http.request("GET", f"{self.base}/jobs/{job_id}", parse=Job.from_public_api, job_id=job_id)

    def running_jobs(self, connection_id: str) -> list[Job]:
        """The connection's newest 20 jobs of every type (the public API cannot filter by status; without
        ``jobType`` it lists syncs, resets, clears and refreshes: every job that keeps a connection busy)."""
        params = {"connectionId": connection_id, "limit": 20, "orderBy": NEWEST_FIRST}
        return self.http.request("GET", f"{self.base}/jobs", parse=_jobs, params=params, connection_id=connection_id)

    def job_pages(self, connection_id: str, page_size: int) -> Iterator[list[Job]]:
        """The connection's jobs that write data (syncs, refreshes) in any status, newest first, page by page."""
        params: dict[str, Any] = {"connectionId": connection_id, "orderBy": NEWEST_FIRST}
        for page in public_pages(self.http, f"{self.base}/jobs", params, page_size, connection_id):
            yield [job for job in (Job.from_public_api(j) for j in page) if job.writes_data]

    def cancel(self, job_id: int) -> Job | None:
        """Ask the server to cancel the job; None when it accepted with an empty answer (a proxy in between)."""
        url = f"{self.base}/jobs/{job_id}"
        job: Job | None = self.http.request("DELETE", url, parse=Job.from_public_api, job_id=job_id, empty_ok=True)
        return job

    # -- connections and workspaces -----------------------------------------------------------------------------
    def get_connection(self, connection_id: str) -> Connection:
        """The connection; ConnectionNotFoundError for an unknown id."""
        with connection_not_found(connection_id):
            raw = self.http.request("GET", f"{self.base}/connections/{connection_id}", connection_id=connection_id)
        return Connection.from_public_api(raw)

    def workspaces(self) -> list[Workspace]:
        """Every workspace the credentials see."""
        return [Workspace.from_api(w) for page in public_pages(self.http, f"{self.base}/workspaces", {}) for w in page]

    def connections(self, workspace_id: str) -> list[Connection]:
        """The connections of one workspace."""
        params = {"workspaceIds": workspace_id}
        pages = public_pages(self.http, f"{self.base}/connections", params)
        return [Connection.from_public_api(c) for page in pages for c in page]
