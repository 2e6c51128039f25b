"""The client and the platform path on payloads in the shapes real Airbyte servers send.

Each envelope in ``tests/airbyte-payloads/`` (our own data; its ``.note.md`` names the Airbyte source file or the
public fixture the shape comes from) is answered to the real client through an httpx transport, and what the
client makes of it is checked: names, namespaces, folders, counts and where they come from, odd answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakehouse_ingest.sources.airbyte.auth import ClientCredentials
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.connections import Connection
from lakehouse_ingest.sources.airbyte.errors import AirbyteAuthError, AirbyteResponseError, ConnectionBusyError
from lakehouse_ingest.sources.airbyte.jobs import Job, JobStatus
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings
from lakehouse_ingest.sources.airbyte.syncs import trigger_or_attach
from lakehouse_ingest.sources.platform.job_files import connection_identities, stream_counts

PAYLOADS = Path(__file__).parent / "airbyte-payloads"
URL = "http://airbyte.test:8000"


def envelope(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return document


def body(name: str) -> Any:
    return envelope(name)["response"]["body"]


def replay(*names: str) -> AirbyteClient:
    """A client whose server answers each request with the envelope recorded for its method and path (in order)."""
    queue: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name in names:
        recorded = envelope(name)
        queue.setdefault((recorded["request"]["method"], recorded["request"]["path"]), []).append(recorded["response"])

    def answer(request: httpx.Request) -> httpx.Response:
        responses = queue.get((request.method, request.url.path))
        if not responses:
            return httpx.Response(404, json={"message": f"no envelope for {request.method} {request.url.path}"})
        response = responses.pop(0) if len(responses) > 1 else responses[0]
        content = b"" if response["body"] is None else json.dumps(response["body"]).encode()
        return httpx.Response(response["status"], content=content, headers={"Content-Type": "application/json"})

    settings = AirbyteSettings(url=URL, max_retries=0)
    return settings.client(transport=httpx.MockTransport(answer), sleep=lambda _: None)


@pytest.fixture
def connection() -> Connection:
    return Connection.from_config_api(body("config_connection_prefix_alias"))


def test_stream_names_are_the_sources_never_alias_names(connection: Connection) -> None:
    # aliasName is pull_requests / Order_Items in the payload (the platform's own rewrite): never a name
    assert [s.name for s in connection.streams] == ["pull-requests", "Order Items"]
    identities = connection_identities(connection)
    assert [(i.destination_name, i.folder) for i in identities] == [
        ("gh_pull-requests", "gh_pull-requests"),
        ("gh_Order Items", "gh_Order_Items"),
    ]
    # how each syncs survives identity: append_dedup with a key merges in silver, it is not appended
    pulls = connection.streams[0]
    assert (pulls.destination_sync_mode, pulls.primary_key) == ("append_dedup", (("id",),))


def test_namespaces_as_each_definition_maps_them() -> None:
    source = connection_identities(Connection.from_config_api(body("config_connection_namespace_source")))
    assert {(i.name, i.namespace, i.destination_namespace) for i in source} == {
        ("customers", "public", "public"),
        ("Order Items", "public", "public"),
    }
    custom = connection_identities(Connection.from_config_api(body("config_connection_customformat_blank_namespace")))
    assert {i.destination_namespace for i in custom} == {"raw_"}  # ${SOURCE_NAMESPACE} of no namespace is ""


def test_stats_without_namespace_match_streams_that_have_one() -> None:
    connection = Connection.from_config_api(body("config_connection_namespace_source"))
    job = Job.from_config_api(body("config_jobs_get_without_logs_succeeded"))
    counts = stream_counts(job, connection_identities(connection))
    assert counts == {"customers": (1000, "customers"), "Order Items": (17, "Order Items")}


def test_old_servers_report_stats_under_the_prefixed_name(connection: Connection) -> None:
    job = Job.from_config_api(body("config_jobs_get_v050_prefixed_stats"))
    counts = stream_counts(job, connection_identities(connection))
    assert {name: count for name, (count, _) in counts.items()} == {"gh_pull-requests": 120, "gh_Order Items": 50}
    assert counts["gh_pull-requests"][1] == "gh_pull-requests"


@pytest.mark.parametrize(
    ("payload", "total", "where"),
    [
        ("legacy_totals_only_attempt", 17, "attempts' totalStats.recordsCommitted"),
        ("config_jobs_get_without_logs_succeeded", 1017, "aggregatedStats.recordsCommitted"),
    ],
)
def test_job_totals_and_where_they_come_from(payload: str, total: int, where: str) -> None:
    assert Job.from_config_api(body(payload)).committed_total == (total, where)


def test_zero_aggregates_over_no_stream_are_no_count_not_zero() -> None:
    (job,) = (Job.from_config_api(j) for j in body("config_jobs_list_stats_missing")["jobs"])
    assert job.records_committed is None and job.stream_stats == {}
    assert job.committed_total is not None and job.committed_total[1].startswith("attempts' ")


def test_timestamps_epoch_seconds_and_iso_without_seconds() -> None:
    config = Job.from_config_api(body("config_jobs_get_succeeded_no_namespace"))
    public = Job.from_public_api(body("public_job_response_running"))
    assert config.created_at.year == 2025 and public.created_at.isoformat() == "2025-01-15T00:00:00+00:00"
    assert Job.from_public_api(body("public_job_response_succeeded")).records_committed is not None


def test_minimal_fixture_shapes_parse() -> None:
    legacy = Job.from_config_api(body("fixture_dagster_legacy_job_minimal"))
    assert legacy.status is JobStatus.SUCCEEDED and legacy.attempts[0].number == 0  # no attempt id: its position
    trigger = Job.from_config_api(body("fixture_prefect_trigger_minimal"))
    assert trigger.id == 45 and trigger.status is JobStatus.UNKNOWN  # no status yet: keep waiting


def test_an_unusable_payload_names_the_endpoint_and_the_field() -> None:
    public = AirbyteSettings(url=URL, api="public", max_retries=0)
    answer = envelope("public_job_spec_example_invalid")["response"]  # the spec's own example: "id", no "jobId"
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=answer["body"]))
    with public.client(transport=transport) as client, pytest.raises(AirbyteResponseError) as info:
        client.get_job(4821)
    message = str(info.value)
    assert "lacks the field 'jobId'" in message and "GET http://airbyte.test:8000/api/public/v1/jobs/4821" in message


def test_an_empty_answer_where_a_body_is_needed_is_a_clear_error() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(204))
    client = AirbyteSettings(url=URL, max_retries=0).client(transport=transport)
    with client, pytest.raises(AirbyteResponseError, match="empty body") as info:
        client.get_job(4821)
    assert "jobs/get_without_logs" in str(info.value)


def test_an_empty_cancel_answer_is_an_accepted_cancel() -> None:
    with replay("config_jobs_cancel_204_empty") as client:
        assert client.cancel_job(4822) is None  # accepted; no KeyError on the empty body


def test_a_running_reset_is_named_never_attached_to() -> None:
    client = replay("config_connections_sync_409_v1", "config_jobs_list_running_reset")
    with client, pytest.raises(ConnectionBusyError) as info:
        trigger_or_attach(client, "7f3c2a10-5b8e-4d2a-9c41-2e6f0b9d8a11", _quiet())
    assert "a reset_connection job is running" in str(info.value) and "job 4830" in str(info.value)


def test_a_running_refresh_is_attached_to() -> None:
    job = Job.from_config_api(body("config_jobs_get_running_refresh"))
    assert job.config_type == "refresh" and job.writes_data


def test_connections_listed_twice_are_one() -> None:
    page = body("public_connections_list_duplicates")
    ids = [c["connectionId"] for c in page["data"]]
    assert len(ids) != len(set(ids)) or page["next"]  # the corpus shows one connection on two pages
    duplicate = {**page, "next": None, "data": page["data"] + page["data"]}
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json=duplicate if r.url.path.endswith("/connections") else _workspaces())
    )
    settings = AirbyteSettings(url=URL, api="public", max_retries=0)
    with settings.client(transport=transport) as client:
        found = client.find_connection(page["data"][0]["name"])
    assert found.id == page["data"][0]["connectionId"] and found.prefix == page["data"][0].get("prefix", "")


@pytest.mark.parametrize("payload", ["token_201", "token_public_200", "token_config_200"])
def test_every_token_answer_a_server_or_proxy_gives_is_taken(payload: str) -> None:
    flow = ClientCredentials(f"{URL}/token", "id", "secret")
    answer = envelope(payload)["response"]
    token = _drive(flow, httpx.Response(answer["status"], json=answer["body"]))
    assert token == answer["body"]["access_token"]


def test_a_refused_token_exchange_is_an_auth_error() -> None:
    answer = envelope("token_400_invalid_client")["response"]
    flow = ClientCredentials(f"{URL}/token", "id", "secret")
    with pytest.raises(AirbyteAuthError, match="refused the client credentials"):
        _drive(flow, httpx.Response(answer["status"], json=answer["body"]))


def _drive(flow: ClientCredentials, token_answer: httpx.Response) -> str:
    """Run the auth flow for one request; the token endpoint answers ``token_answer``; returns the bearer sent."""
    request = httpx.Request("GET", f"{URL}/api/v1/health")
    steps: Iterator[httpx.Request] = flow.auth_flow(request)  # type: ignore[assignment]
    exchange = next(steps)
    assert exchange.url.path == "/token"
    sent = steps.send(token_answer)  # type: ignore[attr-defined]
    return str(sent.headers["Authorization"]).removeprefix("Bearer ")


def _workspaces() -> dict[str, Any]:
    return {"data": [{"workspaceId": "11111111-1111-4111-8111-111111111111", "name": "w"}]}


def _quiet() -> Any:
    import logging

    return logging.getLogger("test.real_shapes")
