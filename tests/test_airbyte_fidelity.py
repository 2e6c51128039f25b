"""Real Airbyte, not our own double: ``python -m flows.bronze`` end to end on the fake server answering in the shapes
real servers send (tests/support/fake_airbyte/; each shape's Airbyte source named there and in
tests/airbyte-payloads/). Asserted on the Parquet found, the manifests per real stream name, the silver tables and
the request log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from support.fake_airbyte import FakeAirbyte, FakeConnection, FakeJob, airbyte_s3_writer
from support.seaweed import S3Endpoint
from test_platform_flow import catalog, objects, unique

from flows.cli import bronze_main as main
from lakehouse_ingest.lake.s3 import S3Settings

pytestmark = pytest.mark.usefixtures("prefect_server")
SOURCE_STREAMS = ["pull-requests", "Order Items"]


@pytest.fixture
def airbyte(s3_env: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAirbyte]:
    writer = airbyte_s3_writer(s3_env, "bronze", rows_per_stream=12)
    with FakeAirbyte(auth="client_credentials", job_seconds=0.3, writer=writer) as server:
        monkeypatch.setenv("AIRBYTE_URL", server.url)
        monkeypatch.setenv("AIRBYTE_CLIENT_ID", "client-id")
        monkeypatch.setenv("AIRBYTE_CLIENT_SECRET", "client-secret")
        monkeypatch.setenv("AIRBYTE_POLL_INTERVAL", "0.05")
        yield server
    assert server.spec_violations == [], server.spec_violations


def run(tmp_path: Path, sources: list[dict[str, Any]], *extra: str) -> int:
    return main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", "s3://bronze", *extra])


def manifests(endpoint: S3Endpoint, name: str, folder: str) -> dict[int, dict[str, Any]]:
    found = objects(endpoint, f"airbyte/{name}/{folder}/_manifests/")
    return {int(m["sync_id"]): m for m in (json.loads(body) for body in found.values())}


def silver_rows(endpoint: S3Endpoint, name: str, folder: str) -> list[dict[str, Any]]:
    options = S3Settings.from_env(endpoint.env()).delta_options()
    rows: list[dict[str, Any]] = (
        DeltaTable(f"s3://silver/{name}/{folder}", storage_options=options)
        .to_pyarrow_table(columns=["id", "_airbyte_meta"])
        .to_pylist()
    )
    return rows


def triggers(airbyte: FakeAirbyte) -> int:
    return len(airbyte.requests_to("/connections/sync", "POST"))


def test_prefix_and_names_that_need_sanitising_land_where_airbyte_writes_them_and_merge_by_key(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    name = unique("gh")
    connection_id = airbyte.add_connection(
        name,
        source_name=name,
        streams=SOURCE_STREAMS,
        prefix="gh_",
        namespace_definition="destination",
        sync_modes={"pull-requests": ("incremental", "append_dedup"), "Order Items": ("incremental", "append_dedup")},
        primary_keys={"pull-requests": [["id"]], "Order Items": [["id"]]},
    )
    sources = [
        {
            "name": name,
            "connection_id": connection_id,
            "streams": [{"name": "pull-requests", "checks": {"min_records": 12}}],
        }
    ]
    for _ in range(2):
        assert run(tmp_path, sources, "--silver", "s3://silver") == 0
    assert triggers(airbyte) == 2
    jobs = [job.id for job in airbyte.jobs_for(connection_id)]
    for folder, stream in (("gh_pull-requests", "gh_pull-requests"), ("gh_Order_Items", "gh_Order Items")):
        landed = objects(s3_env, f"airbyte/{name}/{folder}/")
        assert len([k for k in landed if k.endswith(".parquet")]) == 2  # one file per job, in Airbyte's folder
        handed = manifests(s3_env, name, folder)
        assert sorted(handed) == jobs
        assert {m["stream"] for m in handed.values()} == {stream}
        assert all(
            m["destination_sync_mode"] == "append_dedup" and m["primary_key"] == [["id"]] for m in handed.values()
        )
        assert all("Airbyte (recordsCommitted of " in m["reconciliation"] for m in handed.values())
        rows = silver_rows(s3_env, name, folder)
        assert sorted(r["id"] for r in rows) == list(range(12))  # merged by key: two syncs, one row per id
        assert {r["_airbyte_meta"]["sync_id"] for r in rows} == {jobs[-1]}
    # the catalog names the stream by its source name; its checks applied to the prefixed batch
    (first,) = [m for m in manifests(s3_env, name, "gh_pull-requests").values() if m["sync_id"] == jobs[0]]
    assert "min_records" in {c["name"] for c in first["checks"]}
    assert not objects(s3_env, f"airbyte/{name}/pull_requests/")  # never aliasName's folder


def test_stats_without_namespace_reconcile_streams_that_have_one(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    name = unique("pg")
    connection_id = airbyte.add_connection(
        name, source_name=name, streams=["users"], namespace_definition="source", stream_namespaces={"users": "public"}
    )
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 0
    (manifest,) = manifests(s3_env, name, "users").values()
    assert manifest["rows"] == 12 and manifest["namespace"] == "public"
    assert manifest["reconciliation"].startswith("12 rows, as counted by Airbyte (recordsCommitted of 'users'")


def overclaiming(endpoint: S3Endpoint) -> Any:
    honest = airbyte_s3_writer(endpoint, "bronze", rows_per_stream=12)

    def write(job: FakeJob, connection: FakeConnection) -> dict[str, int]:
        return {stream: rows + 1 for stream, rows in honest(job, connection).items()}

    return write


def test_legacy_totals_only_reconcile_the_job_and_a_mismatch_quarantines_every_stream(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("legacy")
    connection_id = airbyte.add_connection(
        name, source_name=name, streams=["users", "orders"], stats_shape="legacy_totals"
    )
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 0
    for stream in ("users", "orders"):
        (manifest,) = manifests(s3_env, name, stream).values()
        assert (
            "Airbyte's total for job" in manifest["reconciliation"]
            and "totalStats.recordsCommitted: 24" in manifest["reconciliation"]
        )

    airbyte.writer = overclaiming(s3_env)  # Airbyte says 26 committed; bronze holds 24
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 1
    err = capsys.readouterr().err
    job = max(j.id for j in airbyte.jobs_for(connection_id))
    for stream in ("users", "orders"):
        assert sorted(manifests(s3_env, name, stream)) == [job - 1]  # the mismatched job is not handed off
        mark = json.loads(
            objects(s3_env, f"airbyte/{name}/{stream}/_quarantine/{job}.json")[
                f"airbyte/{name}/{stream}/_quarantine/{job}.json"
            ]
        )
        (count,) = [c for c in mark["checks"] if c["name"] == "row_count"]
        assert "hold 24 rows together" in count["detail"] and "Airbyte committed 26" in count["detail"]
        assert "totalStats.recordsCommitted" in count["detail"]
    assert "row_count" in err


@pytest.mark.parametrize(("policy", "code"), [("warn", 0), ("require", 1)])
def test_no_count_at_all_says_so_and_the_policy_decides(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, policy: str, code: int
) -> None:
    name = unique("nocount")
    connection_id = airbyte.add_connection(name, source_name=name, streams=["users"], stats_shape="none")
    sources = [
        {"name": name, "connection_id": connection_id, "streams": [{"name": "users", "checks": {"reconcile": policy}}]}
    ]
    assert run(tmp_path, sources) == code
    job = max(j.id for j in airbyte.jobs_for(connection_id))
    where = "_manifests" if policy == "warn" else "_quarantine"
    (document,) = objects(s3_env, f"airbyte/{name}/users/{where}/{job}.json").values()
    (count,) = [c for c in json.loads(document)["checks"] if c["name"] == "row_count"]
    assert count["detail"].startswith(f"not reconciled: Airbyte (job {job}) reported no count")
    assert count["passed"] is (policy == "warn")


def test_a_502_after_the_job_was_created_attaches_to_it_never_triggers_twice(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    name = unique("gw")
    connection_id = airbyte.add_connection(name, source_name=name)
    airbyte.fail_trigger_after_create(502)
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 0
    (job,) = airbyte.jobs_for(connection_id)
    assert triggers(airbyte) == 1 and sorted(manifests(s3_env, name, "users")) == [job.id]


def test_polls_that_keep_failing_cancel_the_job_and_say_so(
    airbyte: FakeAirbyte,
    s3_env: S3Endpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique("down")
    connection_id = airbyte.add_connection(name, source_name=name)
    airbyte.stick_running(connection_id)
    airbyte.persistent_failure("POST", "/jobs/get_without_logs", 503)
    airbyte.empty_reply_next("POST", "/jobs/cancel", 204)  # a proxy's empty answer to the cancel: read back
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 1
    (job,) = airbyte.jobs_for(connection_id)
    cancels = airbyte.requests_to("/jobs/cancel", "POST")
    assert len(cancels) == 1 and job.status == "cancelled"
    assert f"job {job.id} was cancelled on Airbyte" in capsys.readouterr().err
    airbyte.clear_failures()


def test_an_unknown_status_that_recovers_is_waited_for(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("odd")
    connection_id = airbyte.add_connection(name, source_name=name)
    airbyte.report_status(connection_id, "throttled", polls=3)
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 0
    (job,) = airbyte.jobs_for(connection_id)
    assert not airbyte.requests_to("/jobs/cancel") and sorted(manifests(s3_env, name, "users")) == [job.id]


def test_an_unknown_status_past_its_grace_cancels_the_job(
    airbyte: FakeAirbyte, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("stuck")
    connection_id = airbyte.add_connection(name, source_name=name)
    airbyte.stick_running(connection_id)
    airbyte.report_status(connection_id, "throttled", polls=10_000)
    monkeypatch.setenv("AIRBYTE_UNKNOWN_STATUS_GRACE", "0.5")
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 1
    assert len(airbyte.requests_to("/jobs/cancel", "POST")) == 1
    err = capsys.readouterr().err
    assert "'throttled', which this client does not know, for 0 s" in err or "which this client does not know" in err


def test_a_token_answered_201_is_taken(airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path) -> None:
    airbyte.token_status = 201
    name = unique("tok")
    connection_id = airbyte.add_connection(name, source_name=name)
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 0
    assert [r.status for r in airbyte.requests_to("/applications/token")] == [201]


def test_streams_that_collide_after_sanitising_stop_the_run_before_a_trigger(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("clash")
    connection_id = airbyte.add_connection(name, source_name=name, streams=["Order Items", "Order_Items"])
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 2
    err = capsys.readouterr().err
    assert "'Order Items'" in err and "'Order_Items'" in err and "Order_Items" in err
    assert triggers(airbyte) == 0 and not objects(s3_env, f"airbyte/{name}/")


def test_a_running_reset_is_named_and_never_attached_to(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("reset")
    connection_id = airbyte.add_connection(name, source_name=name)
    reset = airbyte.start_reset(connection_id, seconds=30)
    assert run(tmp_path, [{"name": name, "connection_id": connection_id}]) == 1
    err = capsys.readouterr().err
    assert "a reset_connection job is running on the connection" in err and f"job {reset}" in err
    assert not airbyte.requests_to("/jobs/cancel") and not objects(s3_env, f"airbyte/{name}/")


def test_a_connection_listed_twice_is_found_by_name(airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path) -> None:
    name = unique("twice")
    workspace = airbyte.add_workspace("second")
    connection_id = airbyte.add_connection(f"{name} → lake", source_name=name)
    airbyte.list_twice(connection_id, workspace_id=workspace)
    assert run(tmp_path, [{"name": name, "connection_name": f"{name} → lake"}]) == 0
    assert len(manifests(s3_env, name, "users")) == 1
