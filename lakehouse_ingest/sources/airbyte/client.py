"""The Airbyte API client: HTTP only, typed results, the API family picked once.

Both API families implement the same job and connection operations (``AirbyteApi``): the Config API
(``config_api``: ``/api/v1``, RPC-style POSTs; the richest: per-stream stats, logs) and the public API
(``public_api``: ``/api/public/v1`` self-managed, ``https://api.airbyte.com/v1`` on Cloud). ``AirbyteClient``
uses the one ``AIRBYTE_API`` names, adds what is the same for both (which jobs are still running, paging back
to a watermark, finding a connection by name) and offers the provisioning calls (``provisioning``, always the
Config API). Every request goes through ``http`` (errors and retries); the sync trigger is never retried (see
``syncs``). Build one with ``AirbyteSettings.client()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import httpx

from lakehouse_ingest.sources.airbyte.config_api import ConfigApi
from lakehouse_ingest.sources.airbyte.connections import Connection, Workspace
from lakehouse_ingest.sources.airbyte.errors import ConnectionNotFoundError
from lakehouse_ingest.sources.airbyte.http import Http
from lakehouse_ingest.sources.airbyte.jobs import Job
from lakehouse_ingest.sources.airbyte.provisioning import ConfigProvisioning
from lakehouse_ingest.sources.airbyte.public_api import PublicApi

if TYPE_CHECKING:
    from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings


class AirbyteApi(Protocol):
    """The job and connection operations each API family implements."""

    def trigger(self, connection_id: str) -> Job:
        """Start a sync, never retried."""

    def get_job(self, job_id: int) -> Job:
        """The job's current state."""

    def running_jobs(self, connection_id: str) -> list[Job]:
        """The connection's jobs as the server lists them when asked for running ones (not yet filtered)."""

    def job_pages(self, connection_id: str, page_size: int) -> Iterator[list[Job]]:
        """The connection's sync jobs in any status, newest first, page by page."""

    def cancel(self, job_id: int) -> Job | None:
        """Ask the server to cancel the job; None when it accepted with an empty answer."""

    def get_connection(self, connection_id: str) -> Connection:
        """The connection; ConnectionNotFoundError for an unknown id."""

    def workspaces(self) -> list[Workspace]:
        """Every workspace the credentials see."""

    def connections(self, workspace_id: str) -> list[Connection]:
        """The connections of one workspace."""


class AirbyteClient(ConfigProvisioning):
    """One HTTP client per server; methods named after what they do, returning typed records."""

    def __init__(
        self,
        settings: AirbyteSettings,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.http = Http(settings, transport, sleep)
        super().__init__(ConfigApi(self.http, settings))
        self.api: AirbyteApi = PublicApi(self.http, settings) if settings.api == "public" else self.config

    @property
    def requests_sent(self) -> int:
        """How many requests this client has sent (each retry counts; token exchanges do not)."""
        return self.http.requests_sent

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def __enter__(self) -> AirbyteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------------------------
    def trigger_sync(self, connection_id: str) -> Job:
        """Start a sync (never retried here: a lost answer does not mean no job was created)."""
        return self.api.trigger(connection_id)

    def get_job(self, job_id: int) -> Job:
        """The job's current state (with per-stream stats on the Config API)."""
        return self.api.get_job(job_id)

    def running_jobs(self, connection_id: str) -> list[Job]:
        """The connection's jobs that are not finished yet, newest first."""
        jobs = self.api.running_jobs(connection_id)
        running = [j for j in jobs if not j.terminal and j.connection_id in ("", connection_id)]
        return sorted(running, key=lambda j: (j.created_at, j.id), reverse=True)

    def jobs_after(self, connection_id: str, after_job_id: int, page_size: int = 50) -> list[Job]:
        """The connection's sync jobs with an id above ``after_job_id``, in any status, oldest first.

        Pages newest first until a page reaches ``after_job_id`` or ends (job ids grow with creation time).
        """
        found: list[Job] = []
        for page in self.api.job_pages(connection_id, page_size):
            found += [j for j in page if j.id > after_job_id and j.connection_id in ("", connection_id)]
            if any(j.id <= after_job_id for j in page):
                break
        return sorted(found, key=lambda j: j.id)

    def recent_jobs(self, connection_id: str, count: int = 20) -> list[Job]:
        """The connection's newest ``count`` jobs that write data, newest first."""
        page = next(iter(self.api.job_pages(connection_id, count)), [])
        return [j for j in page if j.connection_id in ("", connection_id)]

    def cancel_job(self, job_id: int) -> Job | None:
        """Ask the server to cancel the job: the job as it answered, or None when it accepted with an empty answer
        (no Airbyte server does; a proxy in between can)."""
        return self.api.cancel(job_id)

    def job_logs(self, job_id: int) -> list[tuple[int, list[str]]]:
        """Each attempt's log lines (Config API ``jobs/get``; the public API has no logs)."""
        return self.config.job_logs(job_id)

    # -- connections and workspaces -------------------------------------------------------------------------------
    def get_connection(self, connection_id: str) -> Connection:
        """The connection; ConnectionNotFoundError for an unknown id."""
        return self.api.get_connection(connection_id)

    def workspace_ids(self) -> list[str]:
        """Every workspace the credentials see."""
        return [w.id for w in self.workspaces()]

    def workspaces(self) -> list[Workspace]:
        """Every workspace the credentials see, with its name."""
        return self.api.workspaces()

    def connections(self, workspace_id: str) -> list[Connection]:
        """The connections of one workspace."""
        return self.api.connections(workspace_id)

    def find_connection(self, name: str) -> Connection:
        """The one connection called ``name`` across all workspaces (one listed twice, across pages or
        workspaces, is one connection)."""
        found = {c.id: c for w in self.workspace_ids() for c in self.connections(w) if c.name == name}
        matches = list(found.values())
        if not matches:
            raise ConnectionNotFoundError(f"no connection named {name!r} on the Airbyte server")
        if len(matches) > 1:
            raise ConnectionNotFoundError(f"{len(matches)} connections are named {name!r}; use connection_id")
        return matches[0]
