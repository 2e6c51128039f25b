"""The fake Airbyte server speaks real HTTP, follows the v2.0.0 spec and behaves like Airbyte where it matters."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from support.fake_airbyte import DEFAULT_ORGANIZATION_ID, FakeAirbyte, airbyte_s3_writer
from support.openapi_check import OpenApiChecker, SpecNotFoundError, default_checker, find_spec_dir
from support.seaweed import S3Endpoint

TERMINAL = {"succeeded", "failed", "cancelled"}
UNKNOWN_ID = "5b5c4a38-5b4a-4f0e-9a54-6f2e1f6d0c11"


@pytest.fixture
def airbyte() -> Iterator[FakeAirbyte]:
    with FakeAirbyte(job_seconds=0.2) as fake:
        yield fake


@pytest.fixture
def client(airbyte: FakeAirbyte) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=airbyte.url, timeout=10) as http:
        yield http


def assert_clean(fake: FakeAirbyte) -> None:
    assert fake.spec_violations == []
    assert fake.errors == []


def sync(client: httpx.Client, connection_id: str) -> dict[str, Any]:
    response = client.post("/api/v1/connections/sync", json={"connectionId": connection_id})
    assert response.status_code == 200, response.text
    return response.json()


def statuses_until_terminal(client: httpx.Client, job_id: int, timeout: float = 10) -> list[str]:
    """Distinct statuses seen by polling jobs/get_light, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.post("/api/v1/jobs/get_light", json={"id": job_id}).json()["job"]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in TERMINAL:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} not terminal after {timeout}s: {seen}")


# -- the validator -------------------------------------------------------------------------------------------------
def test_validator_rejects_invalid_bodies() -> None:
    checker = default_checker()
    good = {
        "job": {"id": 1, "configType": "sync", "configId": "c", "createdAt": 1, "updatedAt": 2, "status": "queued"},
        "attempts": [{"attempt": {"id": 0, "status": "running", "createdAt": 1, "updatedAt": 2}}],
    }
    assert checker.check_response("POST", "/api/v1/jobs/get", 200, good) == []

    missing = {"job": {**good["job"]}, "attempts": []}
    del missing["job"]["createdAt"]
    assert any("createdAt" in p for p in checker.check_response("POST", "/api/v1/jobs/get", 200, missing))
    bad_status = {**good, "job": {**good["job"], "status": "done"}}
    assert any("'done' is not one of" in p for p in checker.check_response("POST", "/api/v1/jobs/get", 200, bad_status))
    wrong_type = {**good, "attempts": [{"attempt": {"id": "0", "status": "running", "createdAt": 1, "updatedAt": 2}}]}
    assert checker.check_response("POST", "/api/v1/jobs/get", 200, wrong_type)
    # public API: uuid format, enum, required fields; problems: type/title constants
    public = {"jobId": 3, "status": "running", "jobType": "sync", "startTime": "2025-01-01T00:00Z", "connectionId": "x"}
    assert any("uuid" in p for p in checker.check_response("GET", "/api/public/v1/jobs/3", 200, public))
    problem = {"status": 409, "type": "https://example.com", "title": "try-again-later", "data": {"message": "m"}}
    assert checker.check_response("POST", "/api/public/v1/jobs", 409, problem, content_type="application/problem+json")
    assert checker.check_response("POST", "/api/public/v1/jobs", 409, {"title": "made-up", "type": "x"})
    # undocumented success status, unknown path, bad request bodies and parameters
    assert checker.check_response("POST", "/api/v1/jobs/get", 201, good)
    assert checker.check_request("POST", "/api/v1/jobs/nonsense", body={})
    assert checker.check_request("POST", "/api/v1/jobs/get", body={"id": "seven"})
    assert checker.check_request("POST", "/api/v1/connections/sync", body={"connectionId": "not-a-uuid"})
    assert checker.check_request("GET", "/api/public/v1/jobs", query={"limit": "500"})
    assert checker.check_request("GET", "/api/public/v1/jobs", query={"connection_id": UNKNOWN_ID})
    assert checker.check_request("GET", "/api/public/v1/jobs/abc")
    assert checker.check_request("DELETE", "/api/public/v1/workspaces")  # method not in spec


def test_validator_quirks_are_applied() -> None:
    checker = default_checker()
    stream = {
        "stream": {"name": "users", "jsonSchema": {"type": "object"}},
        "config": {"syncMode": "full_refresh", "destinationSyncMode": "append"},
    }
    assert checker.validate_schema("config", "AirbyteStreamAndConfiguration", stream) == []
    assert checker.validate_schema("config", "JobStatus", "queued") == []
    assert checker.validate_schema("public", "JobStatusEnum", "queued") == []
    grant = {"client_id": "a", "client_secret": "b", "grant_type": "client_credentials"}
    assert checker.validate_schema("public", "ApplicationTokenRequestWithGrant", grant) == []
    assert checker.validate_schema("public", "ApplicationTokenRequestWithGrant", {**grant, "grant_type": "password"})
    assert checker.operation_id("POST", "/api/v1/workspaces/list") == "listWorkspaces"
    assert checker.operation_id("GET", "/api/public/v1/jobs/12") == "getJob"
    assert checker.operation_id("GET", "/api/public/v1/jobs") == "listJobs"


def test_missing_spec_dir_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(SpecNotFoundError, match="airbyte-openapi"):
        find_spec_dir(tmp_path / "repo")
    with pytest.raises(SpecNotFoundError, match=r"config\.yaml"):
        OpenApiChecker(tmp_path)


def test_tampered_response_is_reported(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    """The server really runs responses through the validator: a broken body shows up in spec_violations."""
    conn = airbyte.add_connection("faker")
    job_id = sync(client, conn)["job"]["id"]

    def break_job(body: dict[str, Any]) -> dict[str, Any]:
        body["job"]["status"] = "finished"
        del body["job"]["configType"]
        return body

    airbyte.tamper_next("POST", "/jobs/get", break_job)
    assert client.post("/api/v1/jobs/get", json={"id": job_id}).json()["job"]["status"] == "finished"
    assert len(airbyte.spec_violations) == 2
    assert any("'finished' is not one of" in v for v in airbyte.spec_violations)
    assert any("'configType' is a required property" in v for v in airbyte.spec_violations)


def test_invalid_request_is_reported_and_rejected(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    response = client.post("/api/v1/connections/sync", json={"connection_id": UNKNOWN_ID})
    assert response.status_code == 422
    assert response.json()["validationErrors"]
    response = client.get("/api/public/v1/jobs", params={"limit": 1000})
    assert response.status_code == 400
    assert response.json()["title"] == "bad-request"
    assert len(airbyte.spec_violations) == 2
    assert "connectionId' is a required property" in airbyte.spec_violations[0]
    assert "1000 is greater than the maximum of 100" in airbyte.spec_violations[1]


# -- endpoints -----------------------------------------------------------------------------------------------------
def test_every_endpoint_answers_spec_valid_bodies(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    workspace = airbyte.add_workspace("Analytics")
    conn = airbyte.add_connection("faker", workspace_id=workspace, streams=["users", "products"])
    job_id = sync(client, conn)["job"]["id"]
    airbyte.wait_for_job(job_id)

    calls: list[tuple[str, str, Any]] = [
        ("GET", "/api/v1/health", None),
        ("POST", "/api/v1/connections/get", {"connectionId": conn}),
        ("POST", "/api/v1/connections/list", {"workspaceId": workspace}),
        ("POST", "/api/v1/workspaces/list", None),
        ("POST", "/api/v1/workspaces/list_by_organization_id", {"organizationId": DEFAULT_ORGANIZATION_ID}),
        ("POST", "/api/v1/jobs/get", {"id": job_id}),
        ("POST", "/api/v1/jobs/get_without_logs", {"id": job_id}),
        ("POST", "/api/v1/jobs/get_light", {"id": job_id}),
        ("POST", "/api/v1/jobs/list", {"configTypes": ["sync"], "configId": conn}),
        ("POST", "/api/v1/applications/token", {"client_id": "client-id", "client_secret": "client-secret"}),
        ("GET", "/api/public/v1/health", None),
        ("GET", f"/api/public/v1/jobs/{job_id}", None),
        ("GET", f"/api/public/v1/jobs?connectionId={conn}", None),
        ("GET", "/api/public/v1/connections", None),
        ("GET", f"/api/public/v1/connections/{conn}", None),
        ("GET", "/api/public/v1/workspaces", None),
        (
            "POST",
            "/api/public/v1/applications/token",
            {"client_id": "client-id", "client_secret": "client-secret", "grant_type": "client_credentials"},
        ),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body)
        assert response.status_code == 200, (method, path, response.text)

    # and the documented error answers
    assert client.post("/api/v1/jobs/get", json={"id": 999_999}).status_code == 404
    assert client.post("/api/v1/connections/get", json={"connectionId": UNKNOWN_ID}).status_code == 404
    assert client.post("/api/v1/connections/list", json={"workspaceId": UNKNOWN_ID}).status_code == 404
    assert client.get("/api/public/v1/jobs/999999").json()["title"] == "resource-not-found"
    assert client.get(f"/api/public/v1/connections/{UNKNOWN_ID}").status_code == 404
    assert client.post("/api/v1/jobs/refresh_everything", json={}).status_code == 404
    assert len(airbyte.spec_violations) == 1  # the unknown path is a client error the fake reports
    assert "path not in the config API spec" in airbyte.spec_violations[0]
    assert airbyte.errors == []

    connection = client.post("/api/v1/connections/get", json={"connectionId": conn}).json()
    assert connection["namespaceDefinition"] == "customformat" and connection["namespaceFormat"] == "faker"
    assert [s["stream"]["name"] for s in connection["syncCatalog"]["streams"]] == ["users", "products"]
    token = client.post("/api/v1/applications/token", json={"client_id": "client-id", "client_secret": "client-secret"})
    assert set(token.json()) == {"access_token"}
    logs = client.post("/api/v1/jobs/get", json={"id": job_id}).json()["attempts"][0]["logs"]["logLines"]
    assert logs and all(isinstance(line, str) for line in logs)
    assert "aggregatedStats" not in client.post("/api/v1/jobs/get", json={"id": job_id}).json()["job"]
    without_logs = client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()
    assert without_logs["job"]["aggregatedStats"]["recordsCommitted"] == 200
    assert set(without_logs["attempts"][0]) == {"attempt"}  # getAttemptInfoWithoutLogsRead: no logType, no logs
    assert client.get("/api/v1/connections/sync/").status_code == 405  # wrong method: reported as well
    assert len(airbyte.spec_violations) == 2 and "method not in the config API spec" in airbyte.spec_violations[1]
    assert client.post("/api/v1/jobs/get_light/", json={"id": job_id}).status_code == 200  # trailing slash


def test_workspaces_list_by_organization_paginates(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    for name in ("c", "a", "b", "d"):
        airbyte.add_workspace(f"ws-{name}")
    airbyte.add_workspace("elsewhere", organization_id="11111111-1111-1111-1111-111111111111")
    names = []
    for offset in (0, 2, 4):
        body = {"organizationId": DEFAULT_ORGANIZATION_ID, "pagination": {"pageSize": 2, "rowOffset": offset}}
        response = client.post("/api/v1/workspaces/list_by_organization_id", json=body)
        names.append([w["name"] for w in response.json()["workspaces"]])
    assert names == [["ws-a", "ws-b"], ["ws-c", "ws-d"], []]
    everything = client.post("/api/v1/workspaces/list", json={}).json()["workspaces"]
    assert len(everything) == 5
    assert_clean(airbyte)


def test_workspaces_list_removed_answers_404() -> None:
    with FakeAirbyte(workspaces_list_removed=True) as fake, httpx.Client(base_url=fake.url) as http:
        fake.add_workspace("only")
        assert http.post("/api/v1/workspaces/list").status_code == 404
        body = {"organizationId": DEFAULT_ORGANIZATION_ID}
        found = http.post("/api/v1/workspaces/list_by_organization_id", json=body).json()["workspaces"]
        assert [w["name"] for w in found] == ["only"]
        assert_clean(fake)


# -- the job state machine -----------------------------------------------------------------------------------------
def test_successful_job_goes_pending_running_succeeded(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker", streams=["users", "products"])
    before = int(time.time())
    triggered = sync(client, conn)
    assert triggered["job"]["status"] == "pending"
    assert triggered["job"]["configId"] == conn and triggered["job"]["configType"] == "sync"
    job_id = triggered["job"]["id"]

    airbyte.wait_for_job(job_id, {"running"})
    running = client.post("/api/v1/jobs/get", json={"id": job_id}).json()
    attempt = running["attempts"][0]["attempt"]
    assert attempt["id"] == 0 and attempt["status"] == "running"
    assert "totalStats" not in attempt and "streamStats" not in attempt and "endedAt" not in attempt
    time.sleep(0.1)
    listed = client.post("/api/v1/jobs/list", json={"configTypes": ["sync"], "configId": conn}).json()
    in_progress = listed["jobs"][0]["attempts"][0]
    assert in_progress["status"] == "running" and in_progress["totalStats"]["recordsEmitted"] > 0

    assert statuses_until_terminal(client, job_id) in (["running", "succeeded"], ["succeeded"])
    done = client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()
    job, attempt = done["job"], done["attempts"][0]["attempt"]
    assert job["status"] == "succeeded"
    assert before <= job["createdAt"] <= job["startedAt"] <= job["updatedAt"] <= time.time() + 1  # epoch seconds
    assert attempt["status"] == "succeeded" and attempt["endedAt"] >= attempt["createdAt"]
    assert attempt["totalStats"]["recordsCommitted"] == 200
    assert {s["streamName"]: s["stats"]["recordsCommitted"] for s in attempt["streamStats"]} == {
        "users": 100,
        "products": 100,
    }
    assert job["aggregatedStats"] == {
        "recordsEmitted": 200,
        "bytesEmitted": 200 * 128,
        "recordsCommitted": 200,
        "bytesCommitted": 200 * 128,
        "recordsRejected": 0,
    }
    public = client.get(f"/api/public/v1/jobs/{job_id}").json()
    assert public["status"] == "succeeded" and public["rowsSynced"] == 200 and public["bytesSynced"] == 200 * 128
    assert public["jobType"] == "sync" and public["lastUpdatedAt"].endswith("Z")
    assert re.fullmatch(r"PT(\d+S|0S)", public["duration"])
    assert airbyte.jobs[job_id].status == "succeeded" and airbyte.jobs[job_id].records_committed == {
        "users": 100,
        "products": 100,
    }
    assert_clean(airbyte)


def test_failed_attempt_then_success_passes_through_incomplete(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.plan_attempts(conn, ["failed", "succeeded"])
    job_id = sync(client, conn)["job"]["id"]
    seen = statuses_until_terminal(client, job_id)
    assert seen == ["pending", "running", "incomplete", "running", "succeeded"]
    attempts = [a["attempt"] for a in client.post("/api/v1/jobs/get", json={"id": job_id}).json()["attempts"]]
    assert [(a["id"], a["status"]) for a in attempts] == [(0, "failed"), (1, "succeeded")]
    failure = attempts[0]["failureSummary"]["failures"][0]
    assert failure["failureOrigin"] == "source" and failure["failureType"] == "system_error"
    assert failure["timestamp"] > 10**12  # milliseconds
    assert attempts[0]["totalStats"]["recordsCommitted"] == 0
    assert attempts[1]["totalStats"]["recordsCommitted"] == 100
    assert_clean(airbyte)


def test_failed_job_carries_the_planned_failure(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    reason = {"failureOrigin": "source", "failureType": "config_error", "externalMessage": "Invalid API key"}
    airbyte.plan_attempts(conn, ["failed", {"failed": reason}])
    job_id = sync(client, conn)["job"]["id"]
    assert statuses_until_terminal(client, job_id)[-1] == "failed"
    info = client.post("/api/v1/jobs/get", json={"id": job_id}).json()
    assert [a["attempt"]["status"] for a in info["attempts"]] == ["failed", "failed"]
    last = info["attempts"][-1]["attempt"]["failureSummary"]["failures"][0]
    assert {k: last[k] for k in reason} == reason
    assert client.get(f"/api/public/v1/jobs/{job_id}").json()["status"] == "failed"
    with pytest.raises(ValueError, match="bad attempt outcome"):
        airbyte.plan_attempts(conn, ["maybe"])
    assert_clean(airbyte)


def test_queued_status_before_running() -> None:
    with FakeAirbyte(job_seconds=0.2, queued_seconds=0.3) as fake, httpx.Client(base_url=fake.url) as http:
        conn = fake.add_connection("faker")
        created = http.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "sync"})
        assert created.status_code == 200 and created.json()["status"] == "pending"
        job_id = created.json()["jobId"]
        fake.wait_for_job(job_id, {"queued"})
        assert http.get(f"/api/public/v1/jobs/{job_id}").json()["status"] == "queued"
        queued = http.post("/api/v1/jobs/list", json={"configTypes": ["sync"], "statuses": ["queued"]}).json()
        assert [j["job"]["id"] for j in queued["jobs"]] == [job_id]
        assert statuses_until_terminal(http, job_id) == ["queued", "running", "succeeded"]
        assert_clean(fake)


def test_cancel_through_config_api(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.stick_running(conn)
    job_id = sync(client, conn)["job"]["id"]
    airbyte.wait_for_job(job_id, {"running"})
    time.sleep(0.3)  # longer than job_seconds: it really is stuck
    assert airbyte.jobs[job_id].status == "running"
    cancelled = client.post("/api/v1/jobs/cancel", json={"id": job_id})
    assert cancelled.status_code == 200
    assert cancelled.json()["job"]["status"] == "cancelled"
    attempt = cancelled.json()["attempts"][0]["attempt"]
    assert attempt["status"] == "failed"
    assert attempt["failureSummary"]["failures"][0]["failureType"] == "manual_cancellation"
    assert airbyte.jobs[job_id].cancelled
    again = client.post("/api/v1/jobs/cancel", json={"id": job_id})
    assert again.status_code == 500 and "not currently running" in again.json()["message"]
    assert client.post("/api/v1/jobs/cancel", json={"id": 424242}).status_code == 404
    # the next job is not stuck any more
    assert statuses_until_terminal(client, sync(client, conn)["job"]["id"])[-1] == "succeeded"
    assert_clean(airbyte)


def test_cancel_through_public_api(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.stick_running(conn)
    job_id = client.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "sync"}).json()["jobId"]
    airbyte.wait_for_job(job_id, {"running"})
    response = client.delete(f"/api/public/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert "lastUpdatedAt" in response.json()
    conflict = client.delete(f"/api/public/v1/jobs/{job_id}")
    assert conflict.status_code == 409
    assert conflict.json()["title"] == "state-conflict"
    assert conflict.json()["data"]["message"] == "Job is not currently running"
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert client.delete("/api/public/v1/jobs/424242").status_code == 404
    assert_clean(airbyte)


def test_cancel_targets_the_connections_current_job(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    """Airbyte signals the connection's workflow: cancelling a finished job id cancels what runs now."""
    conn = airbyte.add_connection("faker")
    old = sync(client, conn)["job"]["id"]
    airbyte.wait_for_job(old)
    airbyte.stick_running(conn)
    current = sync(client, conn)["job"]["id"]
    response = client.post("/api/v1/jobs/cancel", json={"id": old})
    assert response.status_code == 200 and response.json()["job"]["id"] == old
    assert response.json()["job"]["status"] == "succeeded"
    assert airbyte.jobs[current].status == "cancelled" and not airbyte.jobs[old].cancelled
    assert_clean(airbyte)


def test_public_job_types(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    refresh = client.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "refresh"})
    assert refresh.status_code == 422
    assert refresh.json()["data"]["message"] == "Refreshes are not supported in the public API"
    reset = client.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "reset"}).json()
    assert reset["jobType"] == "reset"
    assert airbyte.wait_for_job(reset["jobId"]).config_type == "reset_connection"
    listed = client.post("/api/v1/jobs/list", json={"configTypes": ["reset_connection"], "configId": conn}).json()
    assert [j["job"]["id"] for j in listed["jobs"]] == [reset["jobId"]]
    assert client.get("/api/public/v1/jobs", params={"jobType": "sync"}).json()["data"] == []
    assert_clean(airbyte)


def test_writer_failure_fails_the_job() -> None:
    def broken(job: Any, connection: Any) -> dict[str, int]:
        raise OSError("bucket is gone")

    with FakeAirbyte(job_seconds=0.1, writer=broken) as fake, httpx.Client(base_url=fake.url) as http:
        conn = fake.add_connection("faker")
        job_id = sync(http, conn)["job"]["id"]
        assert statuses_until_terminal(http, job_id)[-1] == "failed"
        failure = http.post("/api/v1/jobs/get", json={"id": job_id}).json()["attempts"][0]["attempt"]
        assert failure["failureSummary"]["failures"][0]["failureOrigin"] == "destination"
        assert "bucket is gone" in failure["failureSummary"]["failures"][0]["externalMessage"]
        assert fake.spec_violations == []
        assert len(fake.errors) == 1 and "bucket is gone" in fake.errors[0]


# -- trigger errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["v1", "head"])
def test_unknown_and_inactive_connections(style: str) -> None:
    with FakeAirbyte(job_seconds=0.2, error_style=style) as fake, httpx.Client(base_url=fake.url) as http:  # type: ignore[arg-type]
        missing = http.post("/api/v1/connections/sync", json={"connectionId": UNKNOWN_ID})
        assert missing.status_code == 404
        inactive = fake.add_connection("paused", status="inactive")
        refused = http.post("/api/v1/connections/sync", json={"connectionId": inactive})
        assert refused.status_code == 500
        if style == "v1":
            assert missing.json()["id"] == UNKNOWN_ID
            assert missing.json()["exceptionClassName"].endswith("IdNotFoundKnownException")
            assert refused.json()["message"] == "Internal Server Error: Can only sync an active connection"
        else:
            assert set(missing.json()) == {"errorId"} and set(refused.json()) == {"errorId"}
        public_missing = http.post("/api/public/v1/jobs", json={"connectionId": UNKNOWN_ID, "jobType": "sync"})
        assert public_missing.status_code == 404 and public_missing.json()["data"]["resourceId"] == UNKNOWN_ID
        public_inactive = http.post("/api/public/v1/jobs", json={"connectionId": inactive, "jobType": "sync"})
        assert public_inactive.status_code == 409 and public_inactive.json()["title"] == "state-conflict"
        assert fake.jobs == {}
        assert_clean(fake)


def test_second_trigger_while_running_is_a_409(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    first = sync(client, conn)["job"]["id"]
    second = client.post("/api/v1/connections/sync", json={"connectionId": conn})
    assert second.status_code == 409
    assert second.json() == {
        "message": f"A sync is already running for: {conn}",
        "exceptionClassName": "io.airbyte.commons.server.errors.ValueConflictKnownException",
    }
    public = client.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "sync"})
    assert public.status_code == 409
    assert public.json() == {
        "status": 409,
        "type": "https://reference.airbyte.com/reference/errors#try-again-later",
        "title": "try-again-later",
        "detail": "Please try again later.",
        "data": {"message": f"A sync is already running for: {conn}"},
    }
    assert list(airbyte.jobs) == [first]
    airbyte.wait_for_job(first)
    assert sync(client, conn)["job"]["id"] != first  # free again once terminal
    assert_clean(airbyte)


@pytest.mark.parametrize("style", ["v0", "v1", "head", "public"])
def test_conflict_on_trigger_styles(airbyte: FakeAirbyte, client: httpx.Client, style: str) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.conflict_on_trigger(style)  # type: ignore[arg-type]
    path, body = (
        ("/api/public/v1/jobs", {"connectionId": conn, "jobType": "sync"})
        if style == "public"
        else ("/api/v1/connections/sync", {"connectionId": conn})
    )
    response = client.post(path, json=body)
    assert response.status_code == 409
    payload = response.json()
    message = f"A sync is already running for: {conn}"
    if style == "v0":
        assert payload["exceptionClassName"] == "io.airbyte.server.errors.ValueConflictKnownException"
        assert payload["message"] == message and payload["exceptionStack"]
    elif style == "v1":
        assert payload == {
            "message": message,
            "exceptionClassName": "io.airbyte.commons.server.errors.ValueConflictKnownException",
        }
    elif style == "head":
        assert payload["message"] == message and "errorId" in payload and "exceptionClassName" not in payload
    else:
        assert payload["title"] == "try-again-later" and payload["data"]["message"] == message
    # the client can attach to the running job
    active = {"configTypes": ["sync"], "configId": conn, "statuses": ["pending", "queued", "running", "incomplete"]}
    jobs = client.post("/api/v1/jobs/list", json=active).json()["jobs"]
    assert len(jobs) == 1 and jobs[0]["job"]["status"] == "running"
    assert statuses_until_terminal(client, jobs[0]["job"]["id"])[-1] == "succeeded"
    assert_clean(airbyte)


def test_slow_trigger_times_out_the_client_but_starts_the_job(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.slow_trigger(1.0)
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/v1/connections/sync", json={"connectionId": conn}, timeout=0.3)
    jobs = client.post("/api/v1/jobs/list", json={"configTypes": ["sync"], "configId": conn}).json()["jobs"]
    assert len(jobs) == 1  # the job started although the client gave up (it may already be done)
    job_id = jobs[0]["job"]["id"]
    assert statuses_until_terminal(client, job_id)[-1] == "succeeded"
    deadline = time.monotonic() + 3
    while not airbyte.requests_to("/connections/sync") and time.monotonic() < deadline:
        time.sleep(0.02)
    (slow,) = airbyte.requests_to("/connections/sync")
    assert slow.duration >= 1.0 and slow.status == 200
    # only the next trigger was slow
    airbyte.wait_for_job(job_id)
    started = time.monotonic()
    sync(client, conn)
    assert time.monotonic() - started < 0.5
    assert_clean(airbyte)


def test_fail_next_injects_faults_with_retry_after(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    job_id = sync(client, conn)["job"]["id"]
    airbyte.fail_next("POST", "/jobs/get", 503, count=2, retry_after=1.5)
    airbyte.fail_next("POST", "/connections/sync", 429, retry_after=2, body={"message": "slow down"})
    first = client.post("/api/v1/jobs/get", json={"id": job_id})
    second = client.post("/api/v1/jobs/get", json={"id": job_id})
    third = client.post("/api/v1/jobs/get", json={"id": job_id})
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["Retry-After"] == "1.5"
    throttled = client.post("/api/v1/connections/sync", json={"connectionId": conn})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert throttled.json() == {"message": "slow down"}
    assert len(airbyte.jobs) == 1  # a fault answers before anything happens
    assert [r.injected for r in airbyte.requests_to("/jobs/get")] == [True, True, False]
    assert_clean(airbyte)


# -- auth ----------------------------------------------------------------------------------------------------------
def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth_none_accepts_anything() -> None:
    with FakeAirbyte() as fake, httpx.Client(base_url=fake.url) as http:
        fake.add_connection("faker")
        assert http.get("/api/public/v1/connections").status_code == 200
        assert http.get("/api/public/v1/connections", headers={"Authorization": "Bearer junk"}).status_code == 200
        assert_clean(fake)


def test_auth_basic() -> None:
    with FakeAirbyte(auth="basic") as fake, httpx.Client(base_url=fake.url) as http:
        ws = fake.add_workspace("main")
        body = {"workspaceId": ws}
        assert http.post("/api/v1/connections/list", json=body, auth=("airbyte", "password")).status_code == 200
        good = {"Authorization": _basic("airbyte", "password")}
        assert http.get("/api/public/v1/workspaces", headers=good).status_code == 200
        for headers in ({}, {"Authorization": _basic("airbyte", "wrong")}, {"Authorization": "Bearer static-token"}):
            denied = http.post("/api/v1/connections/list", json=body, headers=headers)
            assert denied.status_code == 401
            assert denied.headers["WWW-Authenticate"].startswith("Basic")
        assert http.get("/api/v1/health").json() == {"available": True}
        assert_clean(fake)


def test_auth_static_bearer() -> None:
    with FakeAirbyte(auth="bearer", token="s3cr3t") as fake, httpx.Client(base_url=fake.url) as http:
        conn = fake.add_connection("faker")
        good = {"Authorization": "Bearer s3cr3t"}
        assert http.get(f"/api/public/v1/connections/{conn}", headers=good).status_code == 200
        assert http.post("/api/v1/connections/get", json={"connectionId": conn}, headers=good).status_code == 200
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": _basic("airbyte", "password")}):
            assert http.get(f"/api/public/v1/connections/{conn}", headers=headers).status_code == 401
            assert http.post("/api/v1/connections/get", json={"connectionId": conn}, headers=headers).status_code == 401
        problem = http.get("/api/public/v1/connections").json()
        assert problem["title"] == "invalid-api-key" and problem["status"] == 401
        assert http.get("/api/v1/health").status_code == 200
        assert_clean(fake)


@pytest.mark.parametrize("endpoint", ["config-json", "public-json", "public-form"])
def test_auth_client_credentials(endpoint: str) -> None:
    with FakeAirbyte(auth="client_credentials") as fake, httpx.Client(base_url=fake.url) as http:
        conn = fake.add_connection("faker")
        creds = {"client_id": "client-id", "client_secret": "client-secret"}
        if endpoint == "config-json":
            response = http.post("/api/v1/applications/token", json=creds)
            assert set(response.json()) == {"access_token"}
        else:
            creds["grant_type"] = "client_credentials"
            kwargs: dict[str, Any] = {"json": creds} if endpoint == "public-json" else {"data": creds}
            response = http.post("/api/public/v1/applications/token", **kwargs)
            assert response.json()["token_type"] == "Bearer" and response.json()["expires_in"] == 180
        assert response.status_code == 200
        token = response.json()["access_token"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert 170 < claims["exp"] - time.time() <= 181
        good = {"Authorization": f"Bearer {token}"}
        assert http.post("/api/v1/connections/get", json={"connectionId": conn}, headers=good).status_code == 200
        assert http.get("/api/public/v1/jobs", headers=good).status_code == 200
        assert http.post("/api/v1/connections/get", json={"connectionId": conn}).status_code == 401
        assert http.get("/api/public/v1/jobs", headers={"Authorization": "Bearer static-token"}).status_code == 401
        bad = http.post("/api/v1/applications/token", json={**creds, "client_secret": "wrong"})
        assert bad.status_code == 400
        assert bad.json()["_embedded"]["errors"][0]["message"] == "Invalid client id or token"
        bad = http.post(
            "/api/public/v1/applications/token", data={**creds, "grant_type": "client_credentials", "client_id": "x"}
        )
        assert bad.status_code == 400
        assert_clean(fake)


def test_tokens_expire_after_ttl_and_on_demand() -> None:
    with FakeAirbyte(auth="client_credentials", token_ttl_seconds=0.4) as fake, httpx.Client(base_url=fake.url) as http:
        creds = {"client_id": "client-id", "client_secret": "client-secret", "grant_type": "client_credentials"}

        def fresh() -> dict[str, str]:
            token = http.post("/api/public/v1/applications/token", json=creds).json()["access_token"]
            return {"Authorization": f"Bearer {token}"}

        headers = fresh()
        assert http.get("/api/public/v1/workspaces", headers=headers).status_code == 200
        time.sleep(0.5)
        assert http.get("/api/public/v1/workspaces", headers=headers).status_code == 401
        headers = fresh()
        assert http.get("/api/public/v1/workspaces", headers=headers).status_code == 200
        fake.expire_tokens()
        assert http.get("/api/public/v1/workspaces", headers=headers).status_code == 401
        assert http.get("/api/public/v1/workspaces", headers=fresh()).status_code == 200
        assert_clean(fake)


# -- lists, pagination, concurrency, shutdown ----------------------------------------------------------------------
def test_job_lists_filter_order_and_paginate(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    other = airbyte.add_connection("other")
    ids = []
    for _ in range(3):
        ids.append(sync(client, conn)["job"]["id"])
        airbyte.wait_for_job(ids[-1])
    airbyte.stick_running(conn)
    ids.append(sync(client, conn)["job"]["id"])
    airbyte.wait_for_job(ids[-1], {"running"})  # it starts pending; under load the status query below could see that
    sync(client, other)

    body: dict[str, Any] = {"configTypes": ["sync"], "configId": conn, "pagination": {"pageSize": 2, "rowOffset": 0}}
    page = client.post("/api/v1/jobs/list", json=body).json()
    assert page["totalJobCount"] == 4
    assert [j["job"]["id"] for j in page["jobs"]] == [ids[3], ids[2]]  # newest first
    body["pagination"]["rowOffset"] = 2
    assert [j["job"]["id"] for j in client.post("/api/v1/jobs/list", json=body).json()["jobs"]] == [ids[1], ids[0]]
    body = {"configTypes": ["sync"], "configId": conn, "statuses": ["succeeded"]}
    assert client.post("/api/v1/jobs/list", json=body).json()["totalJobCount"] == 3
    assert client.post("/api/v1/jobs/list", json={"configTypes": ["reset_connection"]}).json()["totalJobCount"] == 0

    first = client.get("/api/public/v1/jobs", params={"connectionId": conn, "limit": 3}).json()
    assert [j["jobId"] for j in first["data"]] == [ids[3], ids[2], ids[1]] and "previous" not in first
    second = httpx.get(first["next"]).json()
    assert [j["jobId"] for j in second["data"]] == [ids[0]] and "next" not in second and "previous" in second
    ascending = client.get("/api/public/v1/jobs", params={"connectionId": conn, "orderBy": "createdAt|ASC"}).json()
    assert [j["jobId"] for j in ascending["data"]] == ids
    running = client.get("/api/public/v1/jobs", params={"status": "running"}).json()["data"]
    assert {j["connectionId"] for j in running} >= {conn}
    connections = client.get("/api/public/v1/connections", params={"limit": 1}).json()
    assert len(connections["data"]) == 1 and "next" in connections
    client.delete(f"/api/public/v1/jobs/{ids[3]}")
    assert_clean(airbyte)


def test_hundred_connections_polled_in_parallel() -> None:
    """100 client threads, each on its own keep-alive connection, trigger and poll at the same time."""
    with FakeAirbyte(job_seconds=0.3) as fake:
        connections = [fake.add_connection(f"conn-{i}") for i in range(100)]
        barrier = threading.Barrier(100)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        with httpx.Client(base_url=fake.url, limits=limits, timeout=30) as http:

            def one(conn: str) -> str:
                barrier.wait()
                job_id = sync(http, conn)["job"]["id"]
                while True:
                    status = http.post("/api/v1/jobs/get", json={"id": job_id}).json()["job"]["status"]
                    if status in TERMINAL:
                        return status
                    time.sleep(0.05)

            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=100) as pool:
                results = list(pool.map(one, connections))
            elapsed = time.monotonic() - started
        assert results == ["succeeded"] * 100
        assert len(fake.jobs) == 100
        assert len({r.client for r in fake.requests}) > 50  # really many TCP connections
        assert elapsed < 10, elapsed
        assert_clean(fake)


def test_shuts_down_cleanly_with_requests_in_flight() -> None:
    fake = FakeAirbyte(job_seconds=0.2)
    fake.__enter__()
    port = int(fake.url.rsplit(":", 1)[1])
    conn = fake.add_connection("faker")
    fake.stick_running(conn)
    with httpx.Client(base_url=fake.url) as http:
        sync(http, fake.add_connection("other"))  # leaves an idle keep-alive connection
        fake.slow_trigger(30)
        with pytest.raises(httpx.ReadTimeout):  # a trigger still sleeping on the server
            http.post("/api/v1/connections/sync", json={"connectionId": conn}, timeout=0.2)
        started = time.monotonic()
        fake.__exit__(None, None, None)
        assert time.monotonic() - started < 1.5
    assert fake._server_thread is not None and not fake._server_thread.is_alive()
    assert fake._ticker is not None and not fake._ticker.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# -- the S3 writer -------------------------------------------------------------------------------------------------
def test_s3_writer_lands_airbyte_parquet(s3: S3Endpoint) -> None:
    writer = airbyte_s3_writer(s3, "bronze", rows_per_stream=50)
    with FakeAirbyte(job_seconds=0.1, writer=writer) as fake, httpx.Client(base_url=fake.url) as http:
        conn = fake.add_connection("shop", streams=["users", "orders"], source_name="fake_shop")
        job_id = sync(http, conn)["job"]["id"]
        assert statuses_until_terminal(http, job_id)[-1] == "succeeded"
        info = http.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()
        committed = {
            s["streamName"]: s["stats"]["recordsCommitted"] for s in info["attempts"][-1]["attempt"]["streamStats"]
        }
        assert committed == {"users": 50, "orders": 50}
        assert fake.jobs[job_id].writer_calls == 1
        job_start_ms = int(fake.jobs[job_id].started_at * 1000)  # type: ignore[operator]
        assert_clean(fake)

    client = s3.boto3_client()
    for stream in ("users", "orders"):
        listed = client.list_objects_v2(Bucket="bronze", Prefix=f"airbyte/fake_shop/{stream}/")["Contents"]
        keys = [o["Key"] for o in listed]
        assert len(keys) == 1
        name = keys[0].rsplit("/", 1)[1]
        assert re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d+_\d+(-\d+)?\.parquet", name)
        assert name.split("_")[3] == str(job_start_ms)
        obj = client.get_object(Bucket="bronze", Key=keys[0])
        assert obj["Metadata"] == {"ab-generation-id": "0"}
        table = pq.read_table(io.BytesIO(obj["Body"].read()))
        assert table.column_names == [
            "_airbyte_raw_id",
            "_airbyte_extracted_at",
            "_airbyte_meta",
            "_airbyte_generation_id",
            "id",
            "name",
            "updated_at",
        ]
        assert table.num_rows == 50
        assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {job_id}
        assert set(table.column("_airbyte_generation_id").to_pylist()) == {0}


# -- stream identity as the platform forms it ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "alias", "folder"),
    [
        ("pull-requests", "pull_requests", "pull-requests"),
        ("Order Items", "Order_Items", "Order_Items"),
        ("Order  Items", "Order_Items", "Order__Items"),  # aliases collapse a run of spaces, S3 folders do not
        ("Order\tItems", "Order_Items", "Order_Items"),
        ("café", "cafe", "cafe"),
        ("ﬁle", "file", "file"),
        ("\uff21\uff22\uff23", "ABC", "ABC"),  # full-width letters
        ("Straße", "Stra_e", "Stra_e"),
        ("x(1)!", "x_1__", "x(1)!"),
        ("a/b", "a_b", "a/b"),
        ("a#b", "a_b", "a_b"),
        ("über-größe", "uber_gro_e", "uber-gro_e"),
        ("数据", "__", "__"),
        ("no\u00a0break", "no_break", "no_break"),  # NFKD turns NBSP into a space: one underscore either way
    ],
)
def test_fake_names_streams_as_airbyte_does(name: str, alias: str, folder: str) -> None:
    """The fake's own copies of Names.toAlphanumericAndUnderscore and toS3SafeCharacters (research rules 2-3)."""
    from support.fake_airbyte.naming import alias_name, s3_folder

    assert alias_name(name) == alias
    assert s3_folder(name) == folder


def test_received_names_and_namespaces() -> None:
    """NamespacingMapper: raw prefix + name (a blank prefix is none); the namespace per definition."""
    from support.fake_airbyte.naming import received_name, received_namespace

    assert received_name("pull-requests", "gh_") == "gh_pull-requests"
    assert received_name("users", "   ") == "users" == received_name("users", None) == received_name("users", "")
    assert received_namespace("public", "source", "${SOURCE_NAMESPACE}") == "public"
    assert received_namespace("", "source", None) == ""  # a blank source namespace stays as it is
    assert received_namespace("public", None, None) == "public"
    assert received_namespace("public", "destination", "x") is None
    assert received_namespace("public", "customformat", "shop_${SOURCE_NAMESPACE}") == "shop_public"
    assert received_namespace(None, "customformat", "${SOURCE_NAMESPACE}") is None
    assert received_namespace("  ", "customformat", "raw_${SOURCE_NAMESPACE}") == "raw_"
    assert received_namespace("public", "customformat", "  ") is None
    assert received_namespace("public", "custom_format", "fixed") == "fixed"


def platform_like(fake: FakeAirbyte, **overrides: Any) -> str:
    """A connection configured like the corpus' "github → bronze": prefix gh_, names that need sanitising."""
    settings: dict[str, Any] = {
        "streams": ["pull-requests", "Order Items"],
        "source_name": "github",
        "prefix": "gh_",
        "namespace_definition": "destination",
        "sync_modes": {"pull-requests": ("incremental", "append_dedup"), "Order Items": ("full_refresh", "overwrite")},
        "primary_keys": {"Order Items": [["order_id"], ["sku"]]},
        **overrides,
    }
    return fake.add_connection("github → bronze", **settings)


def test_connection_reads_show_the_platforms_settings(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = platform_like(
        airbyte,
        namespace_definition="customformat",
        namespace_format="shop_${SOURCE_NAMESPACE}",
        stream_namespaces={"pull-requests": "public"},
        cursor_fields={"pull-requests": ["updated_at"]},
    )
    read = client.post("/api/v1/connections/get", json={"connectionId": conn}).json()
    assert (read["prefix"], read["namespaceDefinition"], read["namespaceFormat"]) == (
        "gh_",
        "customformat",
        "shop_${SOURCE_NAMESPACE}",
    )
    streams = {s["stream"]["name"]: s for s in read["syncCatalog"]["streams"]}
    assert streams["pull-requests"]["stream"]["namespace"] == "public"
    assert "namespace" not in streams["Order Items"]["stream"]  # nulls are omitted
    configs = {name: s["config"] for name, s in streams.items()}
    assert configs["pull-requests"]["aliasName"] == "pull_requests"
    assert configs["Order Items"]["aliasName"] == "Order_Items"
    assert (configs["pull-requests"]["syncMode"], configs["pull-requests"]["destinationSyncMode"]) == (
        "incremental",
        "append_dedup",
    )
    assert configs["pull-requests"]["cursorField"] == ["updated_at"] and configs["Order Items"]["cursorField"] == []
    assert configs["Order Items"]["primaryKey"] == [["order_id"], ["sku"]]
    assert all(c["selected"] is True and c["suggested"] is False for c in configs.values())

    public = client.get(f"/api/public/v1/connections/{conn}").json()
    assert (public["prefix"], public["namespaceDefinition"], public["namespaceFormat"]) == (
        "gh_",
        "custom_format",
        "shop_${SOURCE_NAMESPACE}",
    )
    modes = {s["name"]: s["syncMode"] for s in public["configurations"]["streams"]}
    assert modes == {"pull-requests": "incremental_deduped_history", "Order Items": "full_refresh_overwrite"}
    assert all("aliasName" not in s for s in public["configurations"]["streams"])
    # defaults stay as before: custom format = the source name, no prefix, full refresh / append by id
    plain = client.post("/api/v1/connections/get", json={"connectionId": airbyte.add_connection("faker")}).json()
    assert (plain["namespaceDefinition"], plain["namespaceFormat"], plain["prefix"]) == ("customformat", "faker", "")
    (users,) = plain["syncCatalog"]["streams"]
    assert (users["config"]["syncMode"], users["config"]["destinationSyncMode"]) == ("full_refresh", "append")
    with pytest.raises(ValueError, match="streams the connection does not have"):
        airbyte.add_connection("x", streams=["a"], sync_modes={"b": ("incremental", "append")})
    with pytest.raises(ValueError, match="namespace definition"):
        airbyte.add_connection("x", namespace_definition="custom_format")
    assert_clean(airbyte)


def test_api_created_catalog_reads_back_as_the_platform_stores_it(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    """Only selected streams are stored; aliasName is recomputed on every read whatever the client sent."""
    source = airbyte.add_source("GitHub", streams=["pull-requests", "Order Items", "issues"])
    destination = airbyte.add_destination("S3", {"s3_bucket_path": "airbyte/github"})
    workspace = next(iter(airbyte.workspaces))
    discovered = client.post("/api/v1/sources/discover_schema", json={"sourceId": source}).json()
    aliases = {s["stream"]["name"]: s["config"]["aliasName"] for s in discovered["catalog"]["streams"]}
    assert aliases == {"pull-requests": "pull_requests", "Order Items": "Order_Items", "issues": "issues"}
    streams = discovered["catalog"]["streams"]
    for item in streams:
        item["config"]["aliasName"] = item["stream"]["name"]  # what a client may send: ignored
        item["config"]["syncMode"] = "full_refresh"
        item["config"]["selected"] = item["stream"]["name"] != "issues"
    body = {
        "sourceId": source,
        "destinationId": destination,
        "status": "active",
        "namespaceDefinition": "source",
        "namespaceFormat": "${SOURCE_NAMESPACE}",
        "prefix": "gh_",
        "syncCatalog": {"streams": streams},
    }
    created = client.post("/api/v1/connections/create", json=body)
    assert created.status_code == 200, created.text
    for read in (created.json(), client.post("/api/v1/connections/list", json={"workspaceId": workspace}).json()):
        read = read.get("connections", [read])[0]
        assert read["namespaceFormat"] == "${SOURCE_NAMESPACE}" and read["prefix"] == "gh_"
        got = {s["stream"]["name"]: s["config"]["aliasName"] for s in read["syncCatalog"]["streams"]}
        assert got == {"pull-requests": "pull_requests", "Order Items": "Order_Items"}
    assert_clean(airbyte)


def test_s3_writer_files_streams_under_the_prefixed_s3_safe_name(s3: S3Endpoint) -> None:
    writer = airbyte_s3_writer(s3, "bronze", rows_per_stream=7)
    source = f"gh{uuid.uuid4().hex[:8]}"
    with FakeAirbyte(job_seconds=0.1, writer=writer) as fake, httpx.Client(base_url=fake.url) as http:
        conn = platform_like(fake, source_name=source, stream_namespaces={"Order Items": "public"})
        job_id = sync(http, conn)["job"]["id"]
        assert statuses_until_terminal(http, job_id)[-1] == "succeeded"
        assert fake.jobs[job_id].records_committed == {"pull-requests": 7, "Order Items": 7}  # source names
        assert_clean(fake)
    client = s3.boto3_client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="bronze", Prefix=f"airbyte/{source}/")["Contents"])
    assert [k.rsplit("/", 1)[0] for k in keys] == [
        f"airbyte/{source}/gh_Order_Items",
        f"airbyte/{source}/gh_pull-requests",
    ]
    for key in keys:
        table = pq.read_table(io.BytesIO(client.get_object(Bucket="bronze", Key=key)["Body"].read()))
        assert table.num_rows == 7
        assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {job_id}


# -- stats as each server generation reports them ------------------------------------------------------------------
def finished_job(fake: FakeAirbyte, client: httpx.Client, conn: str) -> int:
    """A job whose first attempt committed its records and failed, and whose second succeeded."""
    fake.plan_attempts(conn, [{"failed": {"externalMessage": "flaky"}, "committed": True}, "succeeded"])
    job_id = sync(client, conn)["job"]["id"]
    fake.wait_for_job(job_id)
    return job_id


def stream_numbers(entries: list[dict[str, Any]], key: str = "recordsCommitted") -> dict[Any, int]:
    return {(e["streamName"], e.get("streamNamespace")): e.get("stats", e)[key] for e in entries}


def test_current_stats_per_endpoint(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    """Source names (no prefix); namespaces only in jobs/list attempts and streamAggregatedStats; a full-refresh
    stream aggregates its last attempt, an incremental one the sum; recordsSynced = committed."""
    ns = {"pull-requests": "public", "Order Items": "public"}
    conn = platform_like(airbyte, namespace_definition="source", stream_namespaces=ns)
    job_id = finished_job(airbyte, client, conn)

    got = client.post("/api/v1/jobs/get", json={"id": job_id}).json()
    assert "aggregatedStats" not in got["job"]
    first, second = (a["attempt"] for a in got["attempts"])
    assert stream_numbers(first["streamStats"]) == {("pull-requests", None): 100, ("Order Items", None): 100}
    assert set(first["streamStats"][0]["stats"]) == {
        "recordsEmitted",
        "bytesEmitted",
        "stateMessagesEmitted",
        "recordsCommitted",
    }
    assert first["recordsSynced"] == 200 and second["recordsSynced"] == 200

    without = client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()
    assert [set(a) for a in without["attempts"]] == [{"attempt"}, {"attempt"}]
    assert stream_numbers(without["attempts"][1]["attempt"]["streamStats"]) == {
        ("pull-requests", None): 100,
        ("Order Items", None): 100,
    }
    assert stream_numbers(without["job"]["streamAggregatedStats"]) == {
        ("pull-requests", "public"): 200,  # incremental: both attempts
        ("Order Items", "public"): 100,  # full refresh: the last attempt
    }
    assert without["job"]["aggregatedStats"]["recordsCommitted"] == 300
    assert without["job"]["enabledStreams"] == [
        {"name": "pull-requests", "namespace": "public"},
        {"name": "Order Items", "namespace": "public"},
    ]

    (listed,) = client.post("/api/v1/jobs/list", json={"configTypes": ["sync"], "configId": conn}).json()["jobs"]
    assert "attempt" not in listed["attempts"][0]  # bare AttemptReads
    assert stream_numbers(listed["attempts"][0]["streamStats"]) == {
        ("pull-requests", "public"): 100,
        ("Order Items", "public"): 100,
    }
    assert client.get(f"/api/public/v1/jobs/{job_id}").json()["rowsSynced"] == 300
    assert_clean(airbyte)


def test_prefixed_stats_like_servers_before_v0_50_24(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = platform_like(
        airbyte,
        namespace_definition="customformat",
        namespace_format="gh_${SOURCE_NAMESPACE}",
        stream_namespaces={"pull-requests": "public", "Order Items": "public"},
        stats_shape="prefixed",
    )
    job_id = finished_job(airbyte, client, conn)
    attempt = client.post("/api/v1/jobs/get", json={"id": job_id}).json()["attempts"][1]["attempt"]
    assert stream_numbers(attempt["streamStats"]) == {("gh_pull-requests", None): 100, ("gh_Order Items", None): 100}
    assert attempt["recordsSynced"] == 200
    without = client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()["job"]
    assert "aggregatedStats" not in without and "streamAggregatedStats" not in without
    (listed,) = client.post("/api/v1/jobs/list", json={"configTypes": ["sync"]}).json()["jobs"]
    assert stream_numbers(listed["attempts"][1]["streamStats"]) == {
        ("gh_pull-requests", "gh_public"): 100,
        ("gh_Order Items", "gh_public"): 100,
    }
    assert "rowsSynced" not in client.get(f"/api/public/v1/jobs/{job_id}").json()
    assert_clean(airbyte)


def test_legacy_totals_and_no_counts() -> None:
    with FakeAirbyte(job_seconds=0.1, stats_shape="legacy_totals") as fake, httpx.Client(base_url=fake.url) as http:
        legacy = platform_like(fake)
        silent = platform_like(fake, stats_shape="none")
        assert fake.connections[legacy].stats_shape is None  # the fake's shape
        for conn in (legacy, silent):
            job_id = sync(http, conn)["job"]["id"]
            fake.wait_for_job(job_id)
            attempt = http.post("/api/v1/jobs/get", json={"id": job_id}).json()["attempts"][0]["attempt"]
            job = http.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()["job"]
            (listed,) = http.post("/api/v1/jobs/list", json={"configTypes": ["sync"], "configId": conn}).json()["jobs"]
            public = http.get(f"/api/public/v1/jobs/{job_id}").json()
            assert "streamStats" not in attempt and "streamStats" not in listed["attempts"][0]
            assert job["aggregatedStats"] == dict.fromkeys(
                ("recordsEmitted", "bytesEmitted", "recordsCommitted", "bytesCommitted", "recordsRejected"), 0
            )
            assert job["streamAggregatedStats"] == [] and public["rowsSynced"] == 0
            assert listed["attempts"][0]["totalStats"] == {}
            if conn == legacy:  # "200 records synced", nothing per stream
                assert attempt["recordsSynced"] == 200 and attempt["totalStats"]["recordsCommitted"] == 200
                assert listed["attempts"][0]["recordsSynced"] == 200
            else:
                assert not {"recordsSynced", "bytesSynced", "totalStats"} & set(attempt)
                assert "recordsSynced" not in listed["attempts"][0]
        # the shape is read at answer time: a test can switch a connection's generation
        fake.set_stats_shape(silent, "current")
        job = http.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()["job"]
        assert job["aggregatedStats"]["recordsCommitted"] == 200
        with pytest.raises(ValueError, match="unknown stats shape"):
            fake.set_stats_shape(silent, "old")  # type: ignore[arg-type]
        assert_clean(fake)


# -- odd answers ---------------------------------------------------------------------------------------------------
def test_empty_reply_after_the_real_handler_ran(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.stick_running(conn)
    job_id = sync(client, conn)["job"]["id"]
    airbyte.wait_for_job(job_id, {"running"})
    airbyte.empty_reply_next("POST", "/jobs/cancel")
    airbyte.empty_reply_next("POST", "/jobs/get_without_logs", status=200, count=2)
    cancelled = client.post("/api/v1/jobs/cancel", json={"id": job_id})
    assert cancelled.status_code == 204 and cancelled.content == b""
    assert "content-type" not in cancelled.headers
    assert airbyte.jobs[job_id].status == "cancelled"  # the cancel happened behind the proxy
    empty = [client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}) for _ in range(3)]
    assert [(r.status_code, r.content == b"") for r in empty] == [(200, True), (200, True), (200, False)]
    assert [r.injected for r in airbyte.requests_to("/jobs/get_without_logs")] == [True, True, False]
    assert airbyte.requests_to("/jobs/cancel")[0].injected
    assert_clean(airbyte)


@pytest.mark.parametrize("path", ["/api/v1/applications/token", "/api/public/v1/applications/token"])
def test_token_endpoint_answering_201(path: str) -> None:
    with FakeAirbyte(auth="client_credentials", token_status=201) as fake, httpx.Client(base_url=fake.url) as http:
        creds = {"client_id": "client-id", "client_secret": "client-secret", "grant_type": "client_credentials"}
        if "public" not in path:
            del creds["grant_type"]
        response = http.post(path, json=creds)
        assert response.status_code == 201 and set(response.json()) == {"access_token"}  # as dagster mocks it
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        assert http.get("/api/public/v1/workspaces", headers=headers).status_code == 200
        assert fake.requests_to("/applications/token")[0].injected
        fake.token_status = 200
        assert http.post(path, json=creds).status_code == 200
        assert_clean(fake)


@pytest.mark.parametrize("api", ["config", "public"])
def test_trigger_fails_after_the_job_was_created(airbyte: FakeAirbyte, client: httpx.Client, api: str) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.fail_trigger_after_create(504)
    path, body = (
        ("/api/v1/connections/sync", {"connectionId": conn})
        if api == "config"
        else ("/api/public/v1/jobs", {"connectionId": conn, "jobType": "sync"})
    )
    response = client.post(path, json=body)
    assert response.status_code == 504 and "504 Gateway Time-out" in response.text
    assert response.headers["content-type"].startswith("text/html")
    (job,) = airbyte.jobs.values()  # exactly one job, and it runs on
    assert airbyte.wait_for_job(job.id).status == "succeeded"
    # a trigger that creates no job (409 while one runs) leaves the plan for the next one that does
    airbyte.stick_running(conn)
    running = sync(client, conn)["job"]["id"]
    airbyte.fail_trigger_after_create()
    assert client.post("/api/v1/connections/sync", json={"connectionId": conn}).status_code == 409
    client.post("/api/v1/jobs/cancel", json={"id": running})
    assert client.post("/api/v1/connections/sync", json={"connectionId": conn}).status_code == 502
    assert len(airbyte.jobs) == 3
    assert [r.injected for r in airbyte.requests_to(path, "POST")][:1] == [True]
    assert_clean(airbyte)


def test_persistent_failure_until_cleared(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    job_id = sync(client, conn)["job"]["id"]
    airbyte.persistent_failure("POST", "/jobs/get_without_logs", 503, retry_after=0)
    statuses = {client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).status_code for _ in range(25)}
    assert statuses == {503}
    assert client.post("/api/v1/jobs/cancel", json={"id": job_id}).status_code in (200, 500)  # unaffected
    assert airbyte.clear_failures("POST", "/jobs/get_without_logs") == 1
    assert client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).status_code == 200
    airbyte.fail_next("POST", "/jobs/get", 502, count=1_000_000)  # a large count works the same way
    assert client.post("/api/v1/jobs/get", json={"id": job_id}).status_code == 502
    assert airbyte.clear_failures() == 1 and client.post("/api/v1/jobs/get", json={"id": job_id}).status_code == 200
    assert_clean(airbyte)


def test_unknown_status_that_recovers(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.report_status(conn, "throttled", polls=3)  # the connection's next job
    job_id = sync(client, conn)["job"]["id"]
    airbyte.wait_for_job(job_id)
    listed = client.post("/api/v1/jobs/list", json={"configTypes": ["sync"]}).json()["jobs"][0]["job"]["status"]
    seen = [
        client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()["job"]["status"],
        client.get(f"/api/public/v1/jobs/{job_id}").json()["status"],
        client.post("/api/v1/jobs/get_light", json={"id": job_id}).json()["job"]["status"],
        client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()["job"]["status"],
    ]
    assert listed == "throttled" and seen == ["throttled", "throttled", "throttled", "succeeded"]
    assert [r.injected for r in airbyte.requests if "/jobs" in r.path] == [True, True, True, True, False]
    # a job's own id, and a cancel ends the report
    airbyte.stick_running(conn)
    stuck = sync(client, conn)["job"]["id"]
    airbyte.report_status(stuck, "paused_by_quota", polls=100)
    assert client.post("/api/v1/jobs/get", json={"id": stuck}).json()["job"]["status"] == "paused_by_quota"
    client.post("/api/v1/jobs/cancel", json={"id": stuck})
    assert client.post("/api/v1/jobs/get", json={"id": stuck}).json()["job"]["status"] == "cancelled"
    assert_clean(airbyte)


def test_running_reset_blocks_a_sync_with_the_same_409(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = platform_like(airbyte)
    reset_id = airbyte.start_reset(conn, seconds=0.6)
    conflict = client.post("/api/v1/connections/sync", json={"connectionId": conn})
    assert conflict.status_code == 409 and conflict.json()["message"] == f"A sync is already running for: {conn}"
    public = client.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "sync"})
    assert public.status_code == 409 and public.json()["title"] == "try-again-later"
    active = ["pending", "queued", "running", "incomplete"]
    only_syncs = {"configTypes": ["sync"], "configId": conn, "statuses": active}
    assert client.post("/api/v1/jobs/list", json=only_syncs).json()["jobs"] == []
    for kinds in (["sync", "refresh", "reset_connection"], ["clear"]):
        (found,) = client.post("/api/v1/jobs/list", json={**only_syncs, "configTypes": kinds}).json()["jobs"]
        assert found["job"]["id"] == reset_id and found["job"]["configType"] == "reset_connection"
        assert found["job"]["resetConfig"] == {"streamsToReset": [{"name": "pull-requests"}, {"name": "Order Items"}]}
    assert client.get("/api/public/v1/jobs", params={"jobType": "reset"}).json()["data"][0]["jobId"] == reset_id
    assert client.get("/api/public/v1/jobs", params={"jobType": "sync"}).json()["data"] == []
    with pytest.raises(RuntimeError, match="still running"):
        airbyte.start_reset(conn)
    reset = airbyte.wait_for_job(reset_id)
    assert reset.status == "succeeded" and reset.records_committed == {} and reset.writer_calls == 0
    assert sync(client, conn)["job"]["configType"] == "sync"  # free once the reset ended
    assert_clean(airbyte)


def test_connections_listed_twice(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    home, other = airbyte.add_workspace("home"), airbyte.add_workspace("other")
    conn = airbyte.add_connection("shop", workspace_id=home)
    airbyte.list_twice(conn)
    first = client.get("/api/public/v1/connections", params={"workspaceIds": home, "limit": 1}).json()
    second = httpx.get(first["next"]).json()
    assert [c["connectionId"] for c in first["data"] + second["data"]] == [conn, conn]
    airbyte.list_twice(conn, workspace_id=other)
    for workspace in (home, other):
        listed = client.post("/api/v1/connections/list", json={"workspaceId": workspace}).json()["connections"]
        assert [(c["connectionId"], c["workspaceId"]) for c in listed] == [(conn, home)]
    both = client.get("/api/public/v1/connections", params={"workspaceIds": f"{home},{other}"}).json()["data"]
    assert [c["connectionId"] for c in both] == [conn, conn]
    assert_clean(airbyte)


def test_attempt_logs_without_attempt_ids(airbyte: FakeAirbyte, client: httpx.Client) -> None:
    conn = airbyte.add_connection("faker")
    airbyte.plan_attempts(conn, ["failed", "succeeded"])
    airbyte.omit_attempt_ids(conn)
    job_id = sync(client, conn)["job"]["id"]
    airbyte.wait_for_job(job_id)
    attempts = client.post("/api/v1/jobs/get", json={"id": job_id}).json()["attempts"]
    assert [("id" in a["attempt"], bool(a["logs"]["logLines"])) for a in attempts] == [(False, True), (False, True)]
    assert airbyte.requests_to("/jobs/get")[-1].injected
    polled = client.post("/api/v1/jobs/get_without_logs", json={"id": job_id}).json()["attempts"]
    assert [a["attempt"]["id"] for a in polled] == [0, 1]  # only the logs endpoint's shape
    assert_clean(airbyte)
