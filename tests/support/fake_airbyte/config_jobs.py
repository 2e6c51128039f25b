"""The Config API's job routes (``connections/sync``, ``jobs/get*``, ``jobs/list``, ``jobs/cancel``), and the
trigger and cancel both APIs share.

A trigger answers 409 "A sync is already running for: <id>" while the connection has a job of any type that has
not ended (a sync, or a reset started with ``start_reset``: one workflow per connection runs them all,
``TemporalClient.startNewManualSync``), in the body of the configured server version; tests can force that
conflict, or make the trigger slow (the job starts at once, the answer comes late) as ``connections/sync`` is on
real servers. Cancelling a job cancels whatever runs for its connection, as Airbyte signals the connection's
workflow.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from support.fake_airbyte.errors import config_conflict, config_internal, not_found, problem
from support.fake_airbyte.job_machine import JobMachine
from support.fake_airbyte.paging import parse_iso, row_page, within
from support.fake_airbyte.payloads import attempt_read, job_info, job_read, public_job
from support.fake_airbyte.routing import Call, Reply, route
from support.fake_airbyte.state import FakeJob, FakeOptions, FakeState


class ConfigJobs:
    """Route handlers for jobs on the Config API; :meth:`trigger` and :meth:`cancel` serve the public API too."""

    def __init__(self, state: FakeState, machine: JobMachine, options: FakeOptions, stop: threading.Event) -> None:
        self.state = state
        self.machine = machine
        self.options = options
        self.stop = stop  # set when the server shuts down: a slow trigger stops waiting

    def routes(self) -> list[Route]:
        return [
            route("POST", "/connections/sync", self.sync),
            route("POST", "/jobs/get", lambda call: self.get(call, logs=True)),
            route("POST", "/jobs/get_without_logs", lambda call: self.get(call, logs=False)),
            route("POST", "/jobs/get_light", self.get_light),
            route("POST", "/jobs/list", self.list_jobs),
            route("POST", "/jobs/cancel", lambda call: self.cancel(call.body.get("id"), "config")),
        ]

    async def sync(self, call: Call) -> Reply:
        return await self.trigger(str(call.body.get("connectionId")), "config", "sync")

    async def trigger(self, connection_id: str, api: str, config_type: str) -> Reply:
        """Start a job of ``config_type`` for the connection; the reply is in ``api``'s (config | public) shape."""
        state, machine = self.state, self.machine
        with state.lock:
            now = time.time()
            machine.advance_all(now)
            conn = state.connections.get(connection_id)
            if conn is None:
                return not_found(api, "connection", connection_id, self.options.error_style)
            if conn.status != "active":
                if api == "public":
                    return problem("state-conflict", "Could not fulfill request")
                return config_internal("Can only sync an active connection", self.options.error_style)
            running = state.active_job(connection_id)
            forced = state.forced_conflicts.pop(0) if state.forced_conflicts else None
            if forced is not None:
                if running is None:  # make one running so the client has something to attach to
                    running = machine.create_job(conn, now, config_type)
                    machine.start_attempt(running, now)
                return config_conflict(connection_id, forced)
            if running is not None:
                return config_conflict(connection_id, "public" if api == "public" else self.options.error_style)
            job = machine.create_job(conn, now, config_type)
            delay = state.slow_triggers.pop(0) if state.slow_triggers else 0.0
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0 and not self.stop.is_set():
            await asyncio.sleep(min(left, 0.05))  # in steps, so shutting down does not wait for it
        with state.lock:
            now = time.time()
            machine.advance(job, now)
            if api == "public":
                return Reply(200, public_job(machine, job, now))
            return Reply(200, job_info(machine, job, now, logs=True))

    def cancel(self, job_id: Any, api: str) -> Reply:
        """Cancel what runs for the job's connection; the reply shows the job asked for, in ``api``'s shape."""
        state, machine = self.state, self.machine
        with state.lock:
            now = time.time()
            machine.advance_all(now)
            job = state.lookup_job(job_id)
            if job is None:
                return not_found(api, "job", job_id, self.options.error_style)
            # Airbyte signals the connection's workflow: whatever runs for the connection is cancelled.
            target = job if not job.terminal else state.active_job(job.connection_id)
            if target is None:
                if api == "public":
                    return problem("state-conflict", "Job is not currently running")
                return config_internal("Job is not currently running", self.options.error_style)
            machine.cancel_job(target, now)
            if api == "public":
                return Reply(200, public_job(machine, job, now))
            return Reply(200, job_info(machine, job, now, logs=True))

    def get(self, call: Call, *, logs: bool) -> Reply:
        return self._show(call.body.get("id"), lambda job, now: job_info(self.machine, job, now, logs=logs), logs=logs)

    def get_light(self, call: Call) -> Reply:
        return self._show(
            call.body.get("id"), lambda job, now: {"job": job_read(self.machine, job, now, aggregated_stats=False)}
        )

    def _show(self, job_id: Any, render: Callable[[FakeJob, float], dict[str, Any]], *, logs: bool = False) -> Reply:
        """The job as of now, in the body ``render`` builds; 404 for an unknown id."""
        with self.state.lock:
            now = time.time()
            self.machine.advance_all(now)
            job = self.state.lookup_job(job_id)
            if job is None:
                return not_found("config", "job", job_id, self.options.error_style)
            body = render(job, now)
            valid = not show_reported_status(self.state, job, body["job"], count=True)
            conn = self.state.connections.get(job.connection_id)
            if logs and conn is not None and not conn.attempt_ids:
                # A fixture shape (dagster-airbyte's legacy tests/utils.py): attempts without their id, which
                # the spec requires: sent unvalidated and recorded as injected.
                for item in body["attempts"]:
                    item["attempt"].pop("id", None)
                valid = False
            return Reply(200, body, validate=valid)

    def list_jobs(self, call: Call) -> Reply:
        """``jobs/list``: filtered, ordered and paged; running attempts show their stats so far."""
        body = call.body
        config_types = set(body.get("configTypes") or [])
        if "clear" in config_types:  # clears are stored as reset_connection (JobServiceDataImpl.listJobs)
            config_types.add("reset_connection")
        config_id = body.get("configId")
        statuses = set(body.get("statuses") or [])
        bounds = {
            key: parse_iso(body[key])
            for key in ("createdAtStart", "createdAtEnd", "updatedAtStart", "updatedAtEnd")
            if body.get(key)
        }
        order_field = body.get("orderByField") or "createdAt"
        descending = (body.get("orderByMethod") or "DESC") == "DESC"
        with self.state.lock:
            now = time.time()
            self.machine.advance_all(now)
            found = [
                job
                for job in self.state.jobs.values()
                if job.config_type in config_types
                and (config_id is None or job.connection_id == config_id)
                and (not statuses or job.status in statuses)
                and within(job.created_at, bounds.get("createdAtStart"), bounds.get("createdAtEnd"))
                and within(job.updated_at, bounds.get("updatedAtStart"), bounds.get("updatedAtEnd"))
            ]
            key = (lambda j: (j.updated_at, j.id)) if order_field == "updatedAt" else (lambda j: (j.created_at, j.id))
            found.sort(key=key, reverse=descending)
            jobs, valid = [], True
            for job in row_page(found, body.get("pagination")):
                read = job_read(self.machine, job, now, aggregated_stats=True)
                valid &= not show_reported_status(self.state, job, read, count=False)
                attempts = [attempt_read(self.machine, job, a, now, in_progress=True) for a in job.attempts]
                jobs.append({"job": read, "attempts": attempts})
            return Reply(200, {"jobs": jobs, "totalJobCount": len(found)}, validate=valid)


def show_reported_status(state: FakeState, job: FakeJob, body: dict[str, Any], *, count: bool) -> bool:
    """Put a status planned with ``report_status`` in the job's body (``count``: this read uses one up).

    Such a status is one the spec does not know (research: ``config_jobs_get_unknown_status``, an invented
    status modelled on how ``queued`` reached clients before their SDKs knew it): the reply is then sent
    unvalidated and recorded as injected. Returns whether it did.
    """
    raw = state.reported_status(job, count=count)
    if raw is None:
        return False
    body["status"] = raw
    return True
