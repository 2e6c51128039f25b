"""The public API's routes (``/api/public/v1``): jobs (create, list, get, cancel), connections (list, get) and
workspaces (list).

Jobs are started and cancelled by the same code as on the Config API (:class:`ConfigJobs`), answered in the public
shapes; lists page with ``limit`` / ``offset`` and link the next and previous pages. A job type filter ``clear``
matches reset jobs (Airbyte stores a clear as ``reset_connection``); a connection ``list_twice`` comes back twice
(on the next page, or through a second workspace).
"""

from __future__ import annotations

import time

from starlette.routing import Route

from support.fake_airbyte.config_jobs import ConfigJobs, show_reported_status
from support.fake_airbyte.errors import problem, public_not_found
from support.fake_airbyte.job_machine import JobMachine
from support.fake_airbyte.paging import first, int_or_none, limit_offset, multi, paged, parse_iso, within
from support.fake_airbyte.payloads import public_connection, public_job, public_workspace
from support.fake_airbyte.routing import Call, Reply, route
from support.fake_airbyte.state import FakeState
from support.openapi_check import PUBLIC_PREFIX

# Public jobType -> the config type a job of it is stored as (a clear is a reset_connection job:
# airbyte-platform DefaultJobCreator.createResetConnectionJob, JobMapper CLEAR -> reset_connection).
CONFIG_TYPES = {"sync": "sync", "reset": "reset_connection", "clear": "reset_connection", "refresh": "refresh"}


class PublicApi:
    """Route handlers of the public API; ``url`` is the server's, for the page links."""

    def __init__(self, state: FakeState, machine: JobMachine, jobs: ConfigJobs, url: str) -> None:
        self.state = state
        self.machine = machine
        self.jobs = jobs
        self.url = url

    def routes(self) -> list[Route]:
        return [
            route("POST", "/jobs", self.create_job),
            route("GET", "/jobs", self.list_jobs),
            route("GET", "/jobs/{job_id}", self.get_job),
            route("DELETE", "/jobs/{job_id}", self.cancel_job),
            route("GET", "/connections", self.list_connections),
            route("GET", "/connections/{connection_id}", self.get_connection),
            route("GET", "/workspaces", self.list_workspaces),
        ]

    async def create_job(self, call: Call) -> Reply:
        job_type = call.body.get("jobType")
        if job_type == "refresh":
            return problem("unprocessable-entity", "Refreshes are not supported in the public API")
        config_type = CONFIG_TYPES.get(str(job_type), "sync")
        return await self.jobs.trigger(str(call.body.get("connectionId")), "public", config_type)

    def get_job(self, call: Call) -> Reply:
        job_id = call.params["job_id"]
        with self.state.lock:
            now = time.time()
            self.machine.advance_all(now)
            job = self.state.lookup_job(int_or_none(job_id))
            if job is None:
                return public_not_found("job", job_id)
            body = public_job(self.machine, job, now)
            return Reply(200, body, validate=not show_reported_status(self.state, job, body, count=True))

    def cancel_job(self, call: Call) -> Reply:
        return self.jobs.cancel(int_or_none(call.params["job_id"]), "public")

    def list_jobs(self, call: Call) -> Reply:
        query = call.query
        limit, offset = limit_offset(query)
        connection_id = first(query, "connectionId")
        status = first(query, "status")
        job_type = first(query, "jobType")
        workspace_ids = set(multi(query, "workspaceIds"))
        order_field, _, order_dir = (first(query, "orderBy") or "createdAt|DESC").partition("|")
        bounds = {
            key: parse_iso(value)
            for key in ("createdAtStart", "createdAtEnd", "updatedAtStart", "updatedAtEnd")
            if (value := first(query, key))
        }
        state = self.state
        with state.lock:
            now = time.time()
            self.machine.advance_all(now)
            if connection_id is not None and connection_id not in state.connections:
                return public_not_found("connection", connection_id)
            found = [
                job
                for job in state.jobs.values()
                if (connection_id is None or job.connection_id == connection_id)
                and (status is None or job.status == status)
                and (job_type is None or CONFIG_TYPES.get(job_type) == job.config_type)
                and (not workspace_ids or state.connections[job.connection_id].workspace_id in workspace_ids)
                and within(job.created_at, bounds.get("createdAtStart"), bounds.get("createdAtEnd"))
                and within(job.updated_at, bounds.get("updatedAtStart"), bounds.get("updatedAtEnd"))
            ]
            key = (lambda j: (j.updated_at, j.id)) if order_field == "updatedAt" else (lambda j: (j.created_at, j.id))
            found.sort(key=key, reverse=(order_dir or "DESC").upper() != "ASC")
            page, valid = [], True
            for job in found[offset : offset + limit]:
                page.append(public_job(self.machine, job, now))
                valid &= not show_reported_status(state, job, page[-1], count=False)
        return Reply(200, paged(self._url("jobs"), query, page, len(found), limit, offset), validate=valid)

    def list_connections(self, call: Call) -> Reply:
        limit, offset = limit_offset(call.query)
        workspace_ids = set(multi(call.query, "workspaceIds"))
        deleted = (first(call.query, "includeDeleted") or "false").lower() == "true"
        with self.state.lock:
            found, twice = [], self.state.listed_twice
            for conn in self.state.connections.values():
                if not deleted and conn.status == "deprecated":
                    continue
                also = twice.get(conn.connection_id, "")
                if not workspace_ids or conn.workspace_id in workspace_ids:
                    found.append(conn)
                    if also is None:
                        found.append(conn)  # again: rows shifted under offset paging, so the next page repeats it
                if also and also in workspace_ids:
                    found.append(conn)  # reachable through another listed workspace too
            page = [public_connection(c) for c in found[offset : offset + limit]]
        return Reply(200, paged(self._url("connections"), call.query, page, len(found), limit, offset))

    def get_connection(self, call: Call) -> Reply:
        connection_id = call.params["connection_id"]
        with self.state.lock:
            conn = self.state.connections.get(connection_id)
            if conn is None:
                return public_not_found("connection", connection_id)
            return Reply(200, public_connection(conn))

    def list_workspaces(self, call: Call) -> Reply:
        limit, offset = limit_offset(call.query)
        workspace_ids = set(multi(call.query, "workspaceIds"))
        deleted = (first(call.query, "includeDeleted") or "false").lower() == "true"
        with self.state.lock:
            found = [
                w
                for w in self.state.workspaces.values()
                if (not workspace_ids or w.workspace_id in workspace_ids) and (deleted or not w.tombstone)
            ]
            page = [public_workspace(w) for w in found[offset : offset + limit]]
        return Reply(200, paged(self._url("workspaces"), call.query, page, len(found), limit, offset))

    def _url(self, collection: str) -> str:
        return f"{self.url}{PUBLIC_PREFIX}/{collection}"
