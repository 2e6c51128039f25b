"""The Airbyte client and sync logic against the fake Airbyte server: real HTTP on loopback, every request
and response checked against the official OpenAPI spec (the fixture fails a test that produced a violation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.fake_airbyte import FakeAirbyte

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.sources.airbyte import pages as pages_module
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.errors import (
    AirbyteAuthError,
    AirbyteJobFailedError,
    AirbyteJobTimeoutError,
    AirbyteRequestError,
    AirbyteTransientError,
    ConnectionInactiveError,
    ConnectionNotFoundError,
)
from lakehouse_ingest.sources.airbyte.jobs import JobStatus
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings
from lakehouse_ingest.sources.airbyte.syncs import await_job, cancel_active_jobs, run_connection_sync, trigger_or_attach
from lakehouse_ingest.sources.platform.job_files import archive_job_logs

LOG = logging.getLogger("test.airbyte")
FAST = {"job_seconds": 0.3, "pending_seconds": 0.05}


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeAirbyte]:
    options = {**FAST, **getattr(request, "param", {})}
    with FakeAirbyte(**options) as server:
        yield server
    assert server.spec_violations == [], server.spec_violations


def client_for(fake: FakeAirbyte, api: str = "config", **overrides: Any) -> AirbyteClient:
    settings = AirbyteSettings(url=fake.url, api=api, backoff_seconds=0.01, **overrides)  # type: ignore[arg-type]
    return settings.client()


def sync(client: AirbyteClient, connection_id: str, timeout: float = 20.0) -> Any:
    return run_connection_sync(client, connection_id, LOG, poll_interval=0.05, timeout=timeout)


@pytest.mark.parametrize("api", ["config", "public"])
def test_trigger_and_await_a_successful_sync(fake: FakeAirbyte, api: str) -> None:
    connection = fake.add_connection("pg", streams=["users", "orders"])
    with client_for(fake, api) as client:
        run = sync(client, connection)
    assert run.job.status is JobStatus.SUCCEEDED and not run.attached
    assert [j.id for j in fake.jobs_for(connection)] == [run.job.id]
    if api == "config":
        assert {k: v.records_committed for k, v in run.job.stream_stats.items()} == {"users": 100, "orders": 100}
    else:
        assert run.job.records_committed == 200 and run.job.stream_stats == {}


@pytest.mark.parametrize(
    ("fake", "credentials"),
    [
        ({"auth": "none"}, {}),
        ({"auth": "basic"}, {"username": "airbyte", "password": "password"}),
        ({"auth": "bearer"}, {"token": "static-token"}),
        ({"auth": "client_credentials"}, {"client_id": "client-id", "client_secret": "client-secret"}),
    ],
    indirect=["fake"],
    ids=["none", "basic", "bearer", "client-credentials"],
)
def test_every_auth_mode_works(fake: FakeAirbyte, credentials: dict[str, str]) -> None:
    connection = fake.add_connection("pg")
    with client_for(fake, **credentials) as client:
        assert client.get_connection(connection).status == "active"


@pytest.mark.parametrize(
    ("fake", "credentials"),
    [
        ({"auth": "basic"}, {"username": "airbyte", "password": "wrong"}),
        ({"auth": "bearer"}, {"token": "forged"}),
        ({"auth": "client_credentials"}, {"client_id": "client-id", "client_secret": "nope"}),
        ({"auth": "basic"}, {}),
    ],
    indirect=["fake"],
    ids=["basic", "bearer", "client-credentials", "missing"],
)
def test_bad_credentials_are_refused_without_leaking_them(fake: FakeAirbyte, credentials: dict[str, str]) -> None:
    connection = fake.add_connection("pg")
    with client_for(fake, **credentials) as client, pytest.raises(AirbyteAuthError) as raised:
        client.get_connection(connection)
    assert raised.value.http_status in (400, 401, 403)
    for secret in ("wrong", "forged", "nope"):
        assert secret not in str(raised.value)


@pytest.mark.parametrize("fake", [{"auth": "client_credentials"}], indirect=True)
@pytest.mark.parametrize("token_path", ["/api/v1/applications/token", "/api/public/v1/applications/token"])
def test_client_credentials_refresh_on_401_once(fake: FakeAirbyte, token_path: str) -> None:
    connection = fake.add_connection("pg")
    client = client_for(fake, client_id="client-id", client_secret="client-secret", token_url=fake.url + token_path)
    with client:
        client.get_connection(connection)
        fake.expire_tokens()
        assert client.get_connection(connection).id == connection
    assert len(fake.requests_to(token_path)) == 2
    assert [r.status for r in fake.requests_to("/connections/get")] == [200, 401, 200]


@pytest.mark.parametrize("fake", [{"auth": "client_credentials", "token_ttl_seconds": 1.0}], indirect=True)
def test_client_credentials_refresh_before_expiry(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    with client_for(fake, client_id="client-id", client_secret="client-secret") as client:
        client.get_connection(connection)
        time.sleep(1.1)
        client.get_connection(connection)
    assert len(fake.requests_to("/applications/token")) == 2
    assert all(r.status == 200 for r in fake.requests_to("/connections/get")), "refreshed before any 401"


def test_slow_trigger_is_attached_to_not_triggered_twice(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.slow_trigger(1.5)
    with client_for(fake, trigger_timeout=0.3) as client:
        run = sync(client, connection)
    assert run.attached and run.job.status is JobStatus.SUCCEEDED
    assert len(fake.jobs_for(connection)) == 1
    deadline = time.monotonic() + 5
    while not fake.requests_to("/connections/sync") and time.monotonic() < deadline:
        time.sleep(0.05)  # the fake records the slow exchange once it has answered
    assert len(fake.requests_to("/connections/sync")) == 1


@pytest.mark.parametrize("style", ["v0", "v1", "head"])
def test_409_sync_already_running_attaches_to_the_running_job(fake: FakeAirbyte, style: str) -> None:
    connection = fake.add_connection("pg")
    fake.conflict_on_trigger(style)  # type: ignore[arg-type]
    with client_for(fake) as client:
        run = sync(client, connection)
    assert run.attached and run.job.status is JobStatus.SUCCEEDED
    assert len(fake.jobs_for(connection)) == 1
    assert fake.requests_to("/connections/sync")[0].status == 409


def test_409_on_the_public_api_attaches_too(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.conflict_on_trigger("public")
    with client_for(fake, "public") as client:
        run = sync(client, connection)
    assert run.attached and len(fake.jobs_for(connection)) == 1


def test_inactive_connection_is_a_clear_error_never_retried(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg", status="inactive")
    with client_for(fake) as client, pytest.raises(ConnectionInactiveError) as raised:
        sync(client, connection)
    assert connection in str(raised.value) and not raised.value.retryable
    assert len(fake.requests_to("/connections/sync")) == 1 and fake.jobs_for(connection) == []


@pytest.mark.parametrize("api", ["config", "public"])
def test_unknown_connection_id(fake: FakeAirbyte, api: str) -> None:
    with client_for(fake, api) as client, pytest.raises(ConnectionNotFoundError) as raised:
        client.get_connection("6f0c2d0e-0000-4000-8000-000000000000")
    assert isinstance(raised.value, ConfigError)
    assert len([r for r in fake.requests if "connections" in r.path]) == 1


def test_5xx_burst_while_polling_is_retried(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.fail_next("POST", "/jobs/get_without_logs", 503, count=3)
    with client_for(fake) as client:
        run = sync(client, connection)
    assert run.job.status is JobStatus.SUCCEEDED
    assert [r.status for r in fake.requests_to("/jobs/get_without_logs")][:4] == [503, 503, 503, 200]


def test_429_honours_retry_after(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.fail_next("POST", "/connections/get", 429, retry_after=0.4)
    with client_for(fake) as client:
        client.get_connection(connection)
    first, second = fake.requests_to("/connections/get")
    assert first.status == 429 and second.status == 200
    assert second.started - first.ended >= 0.35


def test_retries_are_bounded(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.fail_next("POST", "/connections/get", 502, count=50)
    with client_for(fake, max_retries=2) as client, pytest.raises(AirbyteTransientError) as raised:
        client.get_connection(connection)
    assert raised.value.http_status == 502 and raised.value.retryable
    assert len(fake.requests_to("/connections/get")) == 3


def test_other_4xx_is_not_retried(fake: FakeAirbyte) -> None:
    fake.fail_next("POST", "/jobs/get_without_logs", 422, body={"message": "bad id"})
    with client_for(fake) as client, pytest.raises(AirbyteRequestError) as raised:
        client.get_job(4711)
    assert raised.value.http_status == 422 and "job 4711" in str(raised.value)
    assert len(fake.requests_to("/jobs/get_without_logs")) == 1


def test_a_5xx_on_the_trigger_is_never_retried_blindly(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.fail_next("POST", "/connections/sync", 502)
    with client_for(fake) as client, pytest.raises(AirbyteTransientError):
        client.trigger_sync(connection)
    assert len(fake.requests_to("/connections/sync")) == 1


def test_failed_attempt_then_success_waits_through_incomplete(
    fake: FakeAirbyte, caplog: pytest.LogCaptureFixture
) -> None:
    connection = fake.add_connection("pg")
    fake.plan_attempts(connection, ["failed", "succeeded"])
    with caplog.at_level(logging.INFO, logger=LOG.name), client_for(fake) as client:
        run = sync(client, connection)
    assert run.job.status is JobStatus.SUCCEEDED and len(run.job.attempts) == 2
    assert "-> incomplete" in caplog.text


def test_failed_job_raises_with_the_failure_summary(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    failure = {"failureOrigin": "source", "failureType": "config_error", "externalMessage": "password expired"}
    fake.plan_attempts(connection, [{"failed": failure}])
    with client_for(fake) as client, pytest.raises(AirbyteJobFailedError) as raised:
        sync(client, connection)
    message = str(raised.value)
    assert "ended failed" in message and "[source/config_error] password expired" in message
    assert f"connection {connection}" in message and f"job {raised.value.job_id}" in message


@pytest.mark.parametrize("fake", [{"queued_seconds": 0.3}], indirect=True)
def test_queued_status_keeps_waiting(fake: FakeAirbyte, caplog: pytest.LogCaptureFixture) -> None:
    connection = fake.add_connection("pg")
    with caplog.at_level(logging.INFO, logger=LOG.name), client_for(fake) as client:
        run = sync(client, connection)
    assert run.job.status is JobStatus.SUCCEEDED
    assert "-> queued" in caplog.text or "(queued)" in caplog.text


def test_unknown_status_keeps_waiting_with_a_warning(fake: FakeAirbyte, caplog: pytest.LogCaptureFixture) -> None:
    connection = fake.add_connection("pg")

    def paused(body: Any) -> Any:
        body["job"]["status"] = "paused_for_capacity"
        return body

    with client_for(fake) as client:
        job, _ = trigger_or_attach(client, connection, LOG)
        fake.tamper_next("POST", "/jobs/get_without_logs", paused)
        with caplog.at_level(logging.WARNING, logger=LOG.name):
            final, polls = await_job(client, job, LOG, poll_interval=0.05, timeout=20)
    assert final.status is JobStatus.SUCCEEDED and polls >= 2
    assert "'paused_for_capacity' this client does not know" in caplog.text
    fake.spec_violations.clear()  # the tampered status is off-spec on purpose


@pytest.mark.parametrize("api", ["config", "public"])
def test_jobs_after_pages_back_to_the_watermark_oldest_first(fake: FakeAirbyte, api: str) -> None:
    connection, other = fake.add_connection("pg"), fake.add_connection("other")
    with client_for(fake, api) as client:
        ids = []
        for _ in range(5):
            ids.append(sync(client, connection).job.id)
            sync(client, other)  # another connection's jobs are never listed
        fake.plan_attempts(connection, ["failed"])
        with pytest.raises(AirbyteJobFailedError) as failed:
            sync(client, connection)
        ids.append(failed.value.job_id or 0)

        def pages() -> int:
            return len(fake.requests_to("/jobs/list") if api == "config" else fake.requests_to("/jobs", "GET"))

        before = pages()
        after = client.jobs_after(connection, ids[1], page_size=2)
        assert pages() - before == 3  # newest first, two a page: ids[1] is on the third, where the listing stops
        assert [j.id for j in after] == ids[2:]
        assert [j.status for j in after] == [JobStatus.SUCCEEDED] * 3 + [JobStatus.FAILED]
        assert all(j.connection_id == connection for j in after)
        assert [j.id for j in client.jobs_after(connection, 0, page_size=2)] == ids
        assert client.jobs_after(connection, ids[-1]) == []


def test_timeout_cancels_the_job(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.stick_running(connection)
    with client_for(fake) as client, pytest.raises(AirbyteJobTimeoutError) as raised:
        sync(client, connection, timeout=0.6)
    job = fake.wait_for_job(raised.value.job_id or 0)
    assert job.status == "cancelled" and job.cancelled
    assert len(fake.requests_to("/jobs/cancel")) == 1


def test_interruption_cancels_the_job(fake: FakeAirbyte) -> None:
    connection = fake.add_connection("pg")
    fake.stick_running(connection)
    calls = []

    def sleep_then_interrupt(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with client_for(fake) as client, pytest.raises(KeyboardInterrupt):
        run_connection_sync(client, connection, LOG, poll_interval=0.05, timeout=60, sleep=sleep_then_interrupt)
    (job,) = fake.jobs_for(connection)
    assert fake.wait_for_job(job.id).status == "cancelled"


def test_errors_carry_context_and_mask_urls() -> None:
    settings = AirbyteSettings(url="http://admin:hunter2@127.0.0.1:9", request_timeout=0.5, max_retries=0)
    with settings.client() as client, pytest.raises(AirbyteTransientError) as raised:
        client.get_job(7)
    text = str(raised.value)
    assert "job 7" in text and "POST http://127.0.0.1:9/api/v1/jobs/get_without_logs" in text
    assert "hunter2" not in text and "admin" not in text
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "AIRBYTE_URL is not set"),
        ({"AIRBYTE_URL": "ftp://x"}, "must start with http"),
        ({"AIRBYTE_URL": "http://x", "AIRBYTE_USERNAME": "a"}, "go together"),
        (
            {"AIRBYTE_URL": "http://x", "AIRBYTE_TOKEN": "t", "AIRBYTE_CLIENT_ID": "c", "AIRBYTE_CLIENT_SECRET": "s"},
            "conflict",
        ),
        ({"AIRBYTE_URL": "http://x", "AIRBYTE_API": "graphql"}, "AIRBYTE_API"),
    ],
)
def test_settings_are_validated_up_front(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AirbyteSettings.from_env(env)


def test_seed_variable_names_are_accepted() -> None:
    settings = AirbyteSettings.from_env(
        {
            "AIRBYTE_API_URL": "http://airbyte:8000/api/v1",
            "AIRBYTE_API_USERNAME": "airbyte",
            "AIRBYTE_API_PASSWORD": "p",
        }
    )
    assert settings.url == "http://airbyte:8000" and settings.auth_mode == "basic"


@pytest.mark.parametrize(
    ("fake", "api"),
    [({}, "config"), ({"workspaces_list_removed": True}, "config"), ({}, "public")],
    indirect=["fake"],
    ids=["workspaces-list", "list-removed-since-1.7", "public"],
)
def test_connection_by_name_across_paginated_workspaces(
    fake: FakeAirbyte, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_module, "PAGE_SIZE", 2)
    workspaces = [fake.add_workspace(f"w{i}") for i in range(5)]
    wanted = fake.add_connection("orders", workspace_id=workspaces[4])
    fake.add_connection("users", workspace_id=workspaces[0])
    with client_for(fake, api) as client:
        assert client.find_connection("orders").id == wanted
        with pytest.raises(ConnectionNotFoundError, match="no connection named 'nope'"):
            client.find_connection("nope")
    if api == "config" and fake.workspaces_list_removed:
        assert len(fake.requests_to("/workspaces/list_by_organization_id")) >= 3


def test_job_logs_are_archived_per_attempt(fake: FakeAirbyte, tmp_path: Path) -> None:
    connection = fake.add_connection("pg")
    fake.plan_attempts(connection, ["failed", "succeeded"])
    logs = LocalStorage(tmp_path / "airbyte-logs")
    with client_for(fake) as client:
        run = sync(client, connection)
        written = archive_job_logs(client, run.job, client.get_connection(connection), logs)
    assert len(written) == 2
    for attempt in (1, 2):
        folder = tmp_path / "airbyte-logs" / f"job-{run.job.id}" / f"attempt-{attempt}"
        assert (folder / "logs.log").read_text().strip()
        assert f'"attempt": {attempt}' in (folder / "metadata.json").read_text()


def test_transport_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    settings = AirbyteSettings(url="http://airbyte.invalid", max_retries=1, backoff_seconds=0.0)
    with settings.client(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(AirbyteTransientError, match="cannot reach the Airbyte server"):
            client.get_job(1)
        assert client.requests_sent == 2


def test_cancelling_the_run_cancels_the_jobs_it_awaits(fake: FakeAirbyte) -> None:
    """What the flow's on_cancellation / on_crashed hooks do: cancel every job still being awaited."""
    connection = fake.add_connection("pg")
    fake.stick_running(connection)
    outcome: list[BaseException] = []
    with client_for(fake) as client:

        def await_in_a_task_thread() -> None:
            try:
                sync(client, connection, timeout=30)
            except BaseException as exc:  # collected for the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=await_in_a_task_thread)
        worker.start()
        deadline = time.monotonic() + 5
        while not fake.jobs_for(connection) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the worker is polling now
        cancelled = cancel_active_jobs(LOG, "flow run cancelled")
        worker.join(timeout=10)
    (job,) = fake.jobs_for(connection)
    assert cancelled == [job.id]
    assert fake.wait_for_job(job.id).status == "cancelled"
    assert isinstance(outcome[0], AirbyteJobFailedError) and "ended cancelled" in str(outcome[0])
