"""The payload corpus (``tests/airbyte-payloads``: our own data in the shapes real Airbyte servers send) against the
official OpenAPI documents, and the fake Airbyte against the corpus.

- Every envelope whose note describes a real server's answer fits the spec (``support.openapi_check``, with
  ``queued`` and the other documented quirks). The shapes that do not (fixtures of other projects' test suites,
  a proxy's empty 204, an invented status, the spec's own broken example) are listed in :data:`DEVIATIONS`, and
  each is asserted to *not* fit, so the list stays honest.
- For the main shapes, the fake's answer to the same scenario has the same keys and nesting as the corpus example
  (values are not compared). Where the fake knowingly differs, the difference is listed with its reason.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.fake_airbyte import FakeAirbyte
from support.openapi_check import default_checker

CORPUS = Path(__file__).parent / "airbyte-payloads"
ENVELOPES = sorted(path.stem for path in CORPUS.glob("*.json"))

# Envelopes that do not fit the spec, each with a phrase of its note that says why.
DEVIATIONS = {
    "config_connection_fixture_nulls": "explicit JSON nulls",  # prefect-airbyte's fixture; servers omit nulls
    "config_jobs_cancel_204_empty": "Not produced by Airbyte's code",  # a proxy's empty 204
    "config_jobs_get_unknown_status": "invented",  # a status the spec does not know yet
    "public_job_spec_example_invalid": "No server sends this",  # api.yaml's own JobResponse example
    "token_201": "No airbyte-platform code path",  # dagster-airbyte's mock
    "fixture_dagster_legacy_job_minimal": "Not a real server shape",
    "fixture_prefect_trigger_minimal": "Real servers send",
}


def envelope(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CORPUS / f"{name}.json").read_text())
    return loaded


def spec_problems(name: str) -> list[str]:
    """What the checker finds in an envelope's request and response."""
    checker = default_checker()
    request, response = envelope(name)["request"], envelope(name)["response"]
    headers = {key.lower(): value for key, value in (response.get("headers") or {}).items()}
    body = request.get("body")
    return [
        *checker.check_request(
            request["method"],
            request["path"],
            body=body,
            query=request.get("query"),
            content_type="application/json" if body is not None else None,
        ),
        *checker.check_response(
            request["method"],
            request["path"],
            response["status"],
            response["body"],
            content_type=headers.get("content-type"),
        ),
    ]


# -- the corpus against the spec -------------------------------------------------------------------------------------
def test_every_envelope_has_a_note() -> None:
    notes = sorted(path.name.removesuffix(".note.md") for path in CORPUS.glob("*.note.md"))
    assert notes == ENVELOPES
    assert len(ENVELOPES) >= 30
    assert set(DEVIATIONS) <= set(ENVELOPES)


@pytest.mark.parametrize("name", [n for n in ENVELOPES if n not in DEVIATIONS])
def test_real_server_shapes_fit_the_spec(name: str) -> None:
    assert spec_problems(name) == []


@pytest.mark.parametrize("name", sorted(DEVIATIONS))
def test_known_deviations_do_not_fit_the_spec(name: str) -> None:
    """A deviation that starts to fit the spec (or whose note stops saying why it does not) must leave the list."""
    assert spec_problems(name), f"{name} fits the spec: remove it from DEVIATIONS"
    assert DEVIATIONS[name].lower() in (CORPUS / f"{name}.note.md").read_text().lower()


def test_readme_names_the_same_deviations() -> None:
    readme = (CORPUS / "README.md").read_text()
    sentence = readme.split("intentionally do not", 1)[1].split("\n\n", 1)[0]
    listed = {name for name in re.findall(r"`(\w+)`", sentence) if name in ENVELOPES}
    assert listed == set(DEVIATIONS) - {"config_jobs_cancel_204_empty"}
    assert re.search(r"config_jobs_cancel_204_empty \| jobs/cancel 204 \| .*not in spec", readme)


# -- the fake against the corpus -------------------------------------------------------------------------------------
OPAQUE = frozenset({"jsonSchema", "logLines"})  # data, not structure


def shape(value: Any, key: str | None = None) -> Any:
    """Keys and nesting of a JSON value: objects by key, lists by the union of their items, scalars by type."""
    if key in OPAQUE:
        return "opaque"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = _merge(merged, shape(item))
        return ["list", merged]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "null"


def _merge(a: Any, b: Any) -> Any:
    """The union of two shapes (a key or list item missing on one side is not a difference)."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a.get(k), b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return ["list", _merge(a[1], b[1])]
    return a if a == b else f"{a}|{b}"


def differences(corpus: Any, fake: Any, path: str = "") -> set[str]:
    """``+path``: only the fake has it; ``-path``: only the corpus; ``~path``: another kind of value."""
    if isinstance(corpus, dict) and isinstance(fake, dict):
        found = set()
        for key in {**corpus, **fake}:
            where = f"{path}.{key}" if path else key
            if key not in fake:
                found.add(f"-{where}")
            elif key not in corpus:
                found.add(f"+{where}")
            else:
                found |= differences(corpus[key], fake[key], where)
        return found
    if isinstance(corpus, list) and isinstance(fake, list):
        if corpus[1] is None or fake[1] is None:  # an empty list: nothing to compare its items with
            return set()
        return differences(corpus[1], fake[1], f"{path}[]")
    return set() if corpus == fake else {f"~{path}: {corpus} vs {fake}"}


@dataclass
class Scenario:
    """How to get the fake's answer for a corpus example, and the differences known and why."""

    run: Callable[[FakeAirbyte, httpx.Client], httpx.Response]
    allowed: dict[str, str] = field(default_factory=dict)


OLD_ENVELOPE = "the corpus shows an older server's job envelope; the fake keeps a current one around the old stats"
WORKSPACE = "internalToConnectionRead does not set it at HEAD; older servers and connections/list answers carry it"


def github(fake: FakeAirbyte, **overrides: Any) -> str:
    """The corpus' "github → bronze": prefix gh_, destination namespace, names that need sanitising."""
    settings: dict[str, Any] = {
        "streams": ["pull-requests", "Order Items"],
        "source_name": "github",
        "prefix": "gh_",
        "namespace_definition": "destination",
        "sync_modes": {"pull-requests": ("incremental", "append_dedup"), "Order Items": ("full_refresh", "overwrite")},
        "cursor_fields": {"pull-requests": ["updated_at"]},
        "primary_keys": {"Order Items": [["order_id"], ["sku"]]},
        **overrides,
    }
    for key in ("sync_modes", "cursor_fields", "primary_keys"):  # only for the streams it has
        settings[key] = {k: v for k, v in settings[key].items() if k in settings["streams"]}
    return fake.add_connection("github → bronze", **settings)


def shop(fake: FakeAirbyte, **overrides: Any) -> str:
    """The corpus' "shop-postgres → bronze": source namespace ``public``, no prefix."""
    settings: dict[str, Any] = {
        "streams": ["customers", "Order Items"],
        "source_name": "shop",
        "namespace_definition": "source",
        "namespace_format": "${SOURCE_NAMESPACE}",
        "stream_namespaces": {"customers": "public", "Order Items": "public"},
        "sync_modes": {"customers": ("incremental", "append_dedup")},
        **overrides,
    }
    return fake.add_connection("shop-postgres → bronze", **settings)


def trigger(client: httpx.Client, conn: str) -> int:
    response = client.post("/api/v1/connections/sync", json={"connectionId": conn})
    assert response.status_code == 200, response.text
    job_id: int = response.json()["job"]["id"]
    return job_id


def finished(fake: FakeAirbyte, client: httpx.Client, conn: str) -> int:
    job_id = trigger(client, conn)
    fake.wait_for_job(job_id)
    return job_id


def config(path: str, body: Any) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(f"/api/v1/{path}", json=body)


def get_job(fake: FakeAirbyte, client: httpx.Client, conn: str, endpoint: str = "jobs/get") -> httpx.Response:
    return config(endpoint, {"id": finished(fake, client, conn)})(client)


def list_jobs(client: httpx.Client, conn: str, types: list[str], **extra: Any) -> httpx.Response:
    return config("jobs/list", {"configTypes": types, "configId": conn, **extra})(client)


def two_attempts(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = github(fake)
    fake.plan_attempts(conn, [{"failed": {"failureType": "transient_error"}, "committed": True}, "succeeded"])
    return get_job(fake, client, conn, "jobs/get_without_logs")


def queued(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = github(fake)
    fake.queued_seconds = 30.0
    job_id = trigger(client, conn)
    try:
        fake.wait_for_job(job_id, {"queued"})
        return config("jobs/get_without_logs", {"id": job_id})(client)
    finally:
        fake.queued_seconds = 0.0
        client.post("/api/v1/jobs/cancel", json={"id": job_id})


def listed_with_namespace(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = shop(fake)
    finished(fake, client, conn)
    fake.stick_running(conn)
    running = trigger(client, conn)
    time.sleep(0.05)
    try:
        return list_jobs(client, conn, ["sync"], pagination={"pageSize": 20, "rowOffset": 0})
    finally:
        client.post("/api/v1/jobs/cancel", json={"id": running})


def running_reset(fake: FakeAirbyte, client: httpx.Client, kind: str) -> httpx.Response:
    conn = github(fake)
    job_id = fake.start_reset(conn, seconds=30.0, config_type=kind)
    fake.wait_for_job(job_id, {"running"})
    time.sleep(0.05)
    try:
        if kind == "refresh":
            return config("jobs/get_without_logs", {"id": job_id})(client)
        statuses = ["pending", "running", "incomplete"]
        return list_jobs(client, conn, ["sync", "refresh", "reset_connection", "clear"], statuses=statuses)
    finally:
        client.post("/api/v1/jobs/cancel", json={"id": job_id})


def stats_missing(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = github(fake, streams=["pull-requests"], stats_shape="legacy_totals")
    finished(fake, client, conn)
    return list_jobs(client, conn, ["sync"], pagination={"pageSize": 20, "rowOffset": 0})


def cancelled(fake: FakeAirbyte, client: httpx.Client, *, empty: bool = False) -> httpx.Response:
    conn = github(fake)
    fake.stick_running(conn)
    job_id = trigger(client, conn)
    fake.wait_for_job(job_id, {"running"})
    if empty:
        fake.empty_reply_next("POST", "/jobs/cancel")
    return config("jobs/cancel", {"id": job_id})(client)


def conflict(fake: FakeAirbyte, client: httpx.Client, api: str) -> httpx.Response:
    conn = github(fake)
    fake.stick_running(conn)
    job_id = trigger(client, conn)
    try:
        if api == "public":
            return client.post("/api/public/v1/jobs", json={"connectionId": conn, "jobType": "sync"})
        fake.error_style = api  # type: ignore[assignment]
        return config("connections/sync", {"connectionId": conn})(client)
    finally:
        fake.error_style = "v1"
        client.post("/api/v1/jobs/cancel", json={"id": job_id})


def unknown_status(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = github(fake)
    fake.stick_running(conn)
    job_id = trigger(client, conn)
    fake.report_status(job_id, "throttled")
    try:
        return config("jobs/get_without_logs", {"id": job_id})(client)
    finally:
        client.post("/api/v1/jobs/cancel", json={"id": job_id})


def public_running(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = github(fake)
    fake.stick_running(conn)
    job_id = trigger(client, conn)
    try:
        return client.get(f"/api/public/v1/jobs/{job_id}")
    finally:
        client.post("/api/v1/jobs/cancel", json={"id": job_id})


def public_jobs(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    conn = github(fake)
    for _ in range(3):
        finished(fake, client, conn)
    reset = fake.start_reset(conn, seconds=30.0)
    try:
        query = {"connectionId": conn, "limit": 2, "offset": 1, "orderBy": "createdAt|DESC"}
        return client.get("/api/public/v1/jobs", params=query)
    finally:
        client.post("/api/v1/jobs/cancel", json={"id": reset})


def listed_twice(fake: FakeAirbyte, client: httpx.Client) -> httpx.Response:
    workspace = fake.add_workspace("duplicates")
    conn = shop(fake, workspace_id=workspace, prefix="pg_")
    fake.list_twice(conn)
    return client.get("/api/public/v1/connections", params={"workspaceIds": workspace, "limit": 1, "offset": 0})


def token(fake: FakeAirbyte, client: httpx.Client, api: str, status: int = 200, *, wrong: bool = False) -> Any:
    creds = {"client_id": "client-id", "client_secret": "wrong" if wrong else fake.client_secret}
    fake.token_status = status
    try:
        if api == "config":
            return client.post("/api/v1/applications/token", json=creds)
        return client.post("/api/public/v1/applications/token", json={**creds, "grant_type": "client_credentials"})
    finally:
        fake.token_status = 200


SCENARIOS: dict[str, Scenario] = {
    "config_connection_prefix_alias": Scenario(
        lambda fake, client: config("connections/get", {"connectionId": github(fake)})(client),
        {"+workspaceId": WORKSPACE},
    ),
    "config_connection_namespace_source": Scenario(
        lambda fake, client: config("connections/get", {"connectionId": shop(fake)})(client),
        {
            "+workspaceId": WORKSPACE,
            **{
                f"+{key}": "left out of this corpus example; config_connection_prefix_alias (same endpoint) has it"
                for key in ("sourceCatalogId", "notifySchemaChanges", "notifySchemaChangesByEmail")
            },
        },
    ),
    "config_connections_sync_running": Scenario(
        lambda fake, client: config("connections/sync", {"connectionId": github(fake)})(client)
    ),
    "config_connections_sync_409_v1": Scenario(lambda fake, client: conflict(fake, client, "v1")),
    "config_connections_sync_409_head": Scenario(
        lambda fake, client: conflict(fake, client, "head"),
        {"+details": "HEAD's KnownException serialises an empty details object; the corpus example leaves it out"},
    ),
    "public_jobs_create_409_try_again_later": Scenario(lambda fake, client: conflict(fake, client, "public")),
    "config_jobs_get_succeeded_no_namespace": Scenario(lambda fake, client: get_job(fake, client, github(fake))),
    "config_jobs_get_without_logs_succeeded": Scenario(
        lambda fake, client: get_job(fake, client, shop(fake), "jobs/get_without_logs")
    ),
    "config_jobs_get_without_logs_two_attempts": Scenario(
        two_attempts,
        {
            "+job.streamAggregatedStats[].wasBackfilled": "absent when unknown (Optional.orElse(null)); the fake "
            "always knows",
            "+attempts[].attempt.failureSummary.failures[].internalMessage": "the fake's source failure carries the "
            "platform's internal message (a SourceException)",
            "+attempts[].attempt.failureSummary.failures[].fromTraceMessage": "the fake's source failure came from a "
            "trace message",
        },
    ),
    "config_jobs_get_queued": Scenario(queued),
    "config_jobs_list_with_namespace": Scenario(listed_with_namespace),
    "config_jobs_list_stats_missing": Scenario(stats_missing),
    "legacy_totals_only_attempt": Scenario(
        lambda fake, client: get_job(fake, client, github(fake, stats_shape="legacy_totals")),
        {"+job.enabledStreams": OLD_ENVELOPE, "+job.startedAt": OLD_ENVELOPE, "+attempts[].logType": OLD_ENVELOPE},
    ),
    "config_jobs_get_v050_prefixed_stats": Scenario(
        lambda fake, client: get_job(fake, client, github(fake, stats_shape="prefixed")),
        {"+job.enabledStreams": OLD_ENVELOPE, "+job.startedAt": OLD_ENVELOPE, "+attempts[].logType": OLD_ENVELOPE},
    ),
    "config_jobs_list_running_reset": Scenario(lambda fake, client: running_reset(fake, client, "reset_connection")),
    "config_jobs_get_running_refresh": Scenario(lambda fake, client: running_reset(fake, client, "refresh")),
    "config_jobs_cancel_cancelled": Scenario(
        cancelled,
        {
            "+attempts[].attempt.failureSummary.failures[].internalMessage": "FailureHelper."
            "failureSummaryForCancellation sets 'Setting attempt to FAILED because the job was cancelled'"
        },
    ),
    "config_jobs_cancel_204_empty": Scenario(lambda fake, client: cancelled(fake, client, empty=True)),
    "config_jobs_get_unknown_status": Scenario(
        unknown_status,
        {
            "+job.enabledStreams": "the corpus example (invented) is abbreviated",
            "+job.aggregatedStats": "get_without_logs always hydrates the aggregates; the invented example has none",
            "+job.streamAggregatedStats": "as aggregatedStats",
        },
    ),
    "public_job_response_running": Scenario(public_running),
    "public_job_response_succeeded": Scenario(
        lambda fake, client: client.get(f"/api/public/v1/jobs/{finished(fake, client, github(fake))}")
    ),
    "public_jobs_list": Scenario(public_jobs),
    "public_connection_response": Scenario(
        lambda fake, client: client.get(
            "/api/public/v1/connections/"
            + shop(fake, prefix="pg_", namespace_definition="customformat", namespace_format="shop_${SOURCE_NAMESPACE}")
        )
    ),
    "public_connections_list_duplicates": Scenario(
        listed_twice,
        {
            f"+data[].{key}": "the corpus' list item is abbreviated"
            for key in ("nonBreakingSchemaUpdatesBehavior", "namespaceDefinition", "namespaceFormat", "prefix")
        },
    ),
    "token_config_200": Scenario(lambda fake, client: token(fake, client, "config")),
    "token_public_200": Scenario(lambda fake, client: token(fake, client, "public")),
    "token_201": Scenario(lambda fake, client: token(fake, client, "public", status=201)),
    "token_400_invalid_client": Scenario(lambda fake, client: token(fake, client, "public", wrong=True)),
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAirbyte]:
    with FakeAirbyte(job_seconds=0.2, pending_seconds=0.0) as server:
        yield server


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fake_answers_in_the_corpus_shape(fake: FakeAirbyte, name: str) -> None:
    expected = envelope(name)["response"]
    scenario = SCENARIOS[name]
    with httpx.Client(base_url=fake.url, timeout=10) as client:
        response = scenario.run(fake, client)
    assert response.status_code == expected["status"], response.text
    expected_type = {k.lower(): v for k, v in expected["headers"].items()}.get("content-type", "")
    assert response.headers.get("content-type", "").split(";")[0] == expected_type.split(";")[0]
    body = response.json() if response.content else None
    found = differences(shape(expected["body"]), shape(body))
    assert found == set(scenario.allowed), "\n".join(sorted(found ^ set(scenario.allowed)))
    assert fake.spec_violations == [] and fake.errors == []


def test_every_main_shape_has_a_scenario() -> None:
    """Everything but the fixture shapes and a few abbreviated or minimal examples is compared with the fake."""
    not_compared = {
        "config_connection_customformat_blank_namespace",  # abbreviated ConnectionRead (validated above)
        "config_connection_fixture_nulls",
        "fixture_dagster_legacy_job_minimal",
        "fixture_prefect_trigger_minimal",
        "public_job_response_pending_minimal",  # the required fields only
        "public_job_spec_example_invalid",
    }
    assert set(SCENARIOS) == set(ENVELOPES) - not_compared
