"""The bronze flow end to end against the fake Airbyte server, whose jobs write real Parquet in Airbyte's
S3-destination layout into the S3 test server: trigger → await → find the job's files → validate → hand off.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from support.fake_airbyte import FakeAirbyte, FakeConnection, FakeJob, airbyte_s3_writer
from support.seaweed import S3Endpoint
from test_bronze_flow import latest_artifact_rows

from flows.cli import bronze_main as main

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def airbyte(s3_env: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAirbyte]:
    writer = airbyte_s3_writer(s3_env, "bronze", rows_per_stream=40)
    with FakeAirbyte(auth="client_credentials", job_seconds=0.4, writer=writer) as server:
        monkeypatch.setenv("AIRBYTE_URL", server.url)
        monkeypatch.setenv("AIRBYTE_CLIENT_ID", "client-id")
        monkeypatch.setenv("AIRBYTE_CLIENT_SECRET", "client-secret")
        monkeypatch.setenv("AIRBYTE_POLL_INTERVAL", "0.1")
        yield server
    assert server.spec_violations == [], server.spec_violations


def catalog(path: Path, sources: list[dict[str, Any]]) -> str:
    path.write_text(yaml.safe_dump({"sources": sources}))
    return str(path)


def sync_one(tmp_path: Path, name: str, connection_id: str) -> int:
    """``python -m flows.bronze`` for one Airbyte source into ``s3://bronze``."""
    return main(
        [
            "--catalog",
            catalog(tmp_path / "c.yaml", [{"name": name, "connection_id": connection_id}]),
            "--bronze",
            "s3://bronze",
        ]
    )


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:6]}"


def objects(endpoint: S3Endpoint, prefix: str) -> dict[str, bytes]:
    client = endpoint.boto3_client()
    listed = client.list_objects_v2(Bucket="bronze", Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket="bronze", Key=o["Key"])["Body"].read() for o in listed}


def test_platform_sources_sync_validate_and_hand_off(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [unique("pg"), unique("crm")]
    ids = [airbyte.add_connection(f"{n} → lake", source_name=n, streams=["users", "orders"]) for n in names]
    sources = [{"name": names[0], "connection_id": ids[0]}, {"name": names[1], "connection_name": f"{names[1]} → lake"}]

    assert main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", "s3://bronze"]) == 0

    out = capsys.readouterr().out
    for name, connection_id in zip(names, ids, strict=True):
        (job,) = airbyte.jobs_for(connection_id)
        assert job.status == "succeeded"
        for stream in ("users", "orders"):
            landed = objects(s3_env, f"airbyte/{name}/{stream}/")
            (manifest_key,) = [k for k in landed if "/_manifests/" in k]
            manifest = json.loads(landed[manifest_key])
            assert manifest["sync_id"] == job.id and manifest["rows"] == job.records_committed[stream] == 40
            (data_key,) = [k for k in landed if k.endswith(".parquet")]
            assert [f["key"] for f in manifest["files"]] == [data_key]
            table = pq.read_table(io.BytesIO(landed[data_key]))
            assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {job.id}
            assert manifest["primary_key"] == [["id"]]
            assert f"{name}.{stream}: 40 rows in 1 file(s)" in out
    assert len(airbyte.requests_to("/applications/token")) == 1, "one token for the whole run"


def test_one_failing_connection_does_not_stop_the_others(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = unique("good"), unique("bad")
    good_id = airbyte.add_connection(good, source_name=good)
    bad_id = airbyte.add_connection(bad, source_name=bad)
    failure = {"failureOrigin": "source", "failureType": "system_error", "externalMessage": "source db unreachable"}
    airbyte.plan_attempts(bad_id, [{"failed": failure}])
    sources = [{"name": good, "connection_id": good_id}, {"name": bad, "connection_id": bad_id}]

    assert main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", "s3://bronze"]) == 1

    assert "[source/system_error] source db unreachable" in capsys.readouterr().err
    assert any("/_manifests/" in k for k in objects(s3_env, f"airbyte/{good}/users/"))
    assert not objects(s3_env, f"airbyte/{bad}/")


def test_rows_that_do_not_match_records_committed_fail_validation(
    s3_env: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = airbyte_s3_writer(s3_env, "bronze", rows_per_stream=10)

    def overclaiming(job: FakeJob, connection: FakeConnection) -> dict[str, int]:
        return {stream: rows + 1 for stream, rows in honest(job, connection).items()}

    name = unique("lossy")
    with FakeAirbyte(job_seconds=0.3, writer=overclaiming) as server:
        monkeypatch.setenv("AIRBYTE_URL", server.url)
        monkeypatch.setenv("AIRBYTE_POLL_INTERVAL", "0.1")
        connection_id = server.add_connection(name, source_name=name)
        sources = [{"name": name, "connection_id": connection_id}]
        assert main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", "s3://bronze"]) == 1
    err = capsys.readouterr().err
    assert f"{name}.users failed validation: check 'row_count' failed in airbyte/{name}/users/" in err
    assert "files hold 10 rows, Airbyte (recordsCommitted of 'users', job " in err and "counted 11" in err
    assert not any("/_manifests/" in k for k in objects(s3_env, f"airbyte/{name}/"))


def test_concurrent_syncs_are_bounded_per_server(
    airbyte: FakeAirbyte, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRBYTE_MAX_CONCURRENT_SYNCS", "2")
    names = [unique(f"c{i}") for i in range(5)]
    sources = [{"name": n, "connection_id": airbyte.add_connection(n, source_name=n)} for n in names]

    assert main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", "s3://bronze"]) == 0

    spans = [
        (job.created_at, job.updated_at)
        for job in airbyte.jobs.values()
        if job.connection_id in {s["connection_id"] for s in sources}
    ]
    assert len(spans) == 5
    peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert peak <= 2


def test_a_prefect_global_limit_bounds_syncs_on_the_server_across_runs(
    airbyte: FakeAirbyte, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit `python -m deployments register` creates for the server applies to every run that sees it."""
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from tasks.airbyte import airbyte_limit_name

    monkeypatch.setenv("AIRBYTE_MAX_CONCURRENT_SYNCS", "10")  # the process bound alone would allow all three
    names = [unique(f"g{i}") for i in range(3)]
    sources = [{"name": n, "connection_id": airbyte.add_connection(n, source_name=n)} for n in names]
    limit = airbyte_limit_name(airbyte.url)
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit, limit=1))
    try:
        assert main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", "s3://bronze"]) == 0
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(limit)
    spans = [
        (job.created_at, job.updated_at)
        for job in airbyte.jobs.values()
        if job.connection_id in {s["connection_id"] for s in sources}
    ]
    assert len(spans) == 3
    assert max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans) == 1


def test_job_logs_are_archived_to_the_logs_bucket(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = unique("logs")
    monkeypatch.setenv("AIRBYTE_LOGS_URI", f"s3://airbyte-logs/{prefix}")
    name = unique("pg")
    connection_id = airbyte.add_connection(name, source_name=name)

    assert sync_one(tmp_path, name, connection_id) == 0

    (job,) = airbyte.jobs_for(connection_id)
    client = s3_env.boto3_client()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="airbyte-logs", Prefix=prefix).get("Contents", [])}
    assert keys == {f"{prefix}/job-{job.id}/attempt-1/logs.log", f"{prefix}/job-{job.id}/attempt-1/metadata.json"}


def test_missing_airbyte_url_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRBYTE_URL", raising=False)
    monkeypatch.delenv("AIRBYTE_API_URL", raising=False)
    sources = [{"name": "pg", "connection_id": "0f6b8f0e-0000-4000-8000-000000000000"}]
    assert main(["--catalog", catalog(tmp_path / "c.yaml", sources), "--bronze", str(tmp_path / "b")]) == 2
    assert "AIRBYTE_URL is not set" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_client_secret_from_a_prefect_secret_block(
    airbyte: FakeAirbyte, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    Secret(value="client-secret").save("airbyte-client-secret", overwrite=True)
    monkeypatch.delenv("AIRBYTE_CLIENT_SECRET")
    monkeypatch.setenv("AIRBYTE_CLIENT_SECRET_BLOCK", "airbyte-client-secret")
    name = unique("blk")
    connection_id = airbyte.add_connection(name, source_name=name)

    assert sync_one(tmp_path, name, connection_id) == 0
    assert [r.status for r in airbyte.requests_to("/applications/token")] == [200]


# --- no job left behind: failed syncs' committed data, jobs a crashed run or the Airbyte UI left -----------


def manifests(endpoint: S3Endpoint, name: str, stream: str) -> dict[int, dict[str, Any]]:
    """The handed-off batches of one stream, by sync id (= Airbyte job id)."""
    found = objects(endpoint, f"airbyte/{name}/{stream}/_manifests/")
    return {int(m["sync_id"]): m for m in (json.loads(body) for body in found.values())}


def ledger(endpoint: S3Endpoint, name: str) -> dict[str, Any]:
    """The source's job ledger (one connection each here): its watermark, done and in-flight jobs."""
    (body,) = objects(endpoint, f"_state/airbyte/{name}/jobs/").values()
    document = json.loads(body)
    return {key: document[key] for key in ("watermark", "done", "in_flight") if key in document}


def outside_sync(airbyte: FakeAirbyte, connection_id: str) -> int:
    """A sync started outside Prefect (the Airbyte UI, an Airbyte schedule), run to its end."""
    from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings

    with AirbyteSettings.from_env().client() as client:
        job_id = client.trigger_sync(connection_id).id
    airbyte.wait_for_job(job_id)
    return job_id


def test_a_failed_sync_still_hands_off_what_it_committed(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Airbyte keeps what a failed job committed and the next sync resumes after it: unless it is handed off
    now, an incremental stream's rows would never reach silver."""
    name = unique("partial")
    connection_id = airbyte.add_connection(name, source_name=name, streams=["users", "orders"])
    failure = {"failureOrigin": "destination", "failureType": "system_error", "externalMessage": "S3 went away"}
    airbyte.plan_attempts(connection_id, [{"failed": failure, "committed": True}])

    assert sync_one(tmp_path, name, connection_id) == 1

    (job,) = airbyte.jobs_for(connection_id)
    assert job.status == "failed" and job.records_committed == {"users": 40, "orders": 40}
    assert "S3 went away" in capsys.readouterr().err  # the run still fails, and says why
    for stream in ("users", "orders"):
        (handed_off,) = manifests(s3_env, name, stream).values()
        assert handed_off["sync_id"] == job.id and handed_off["rows"] == 40
    assert ledger(s3_env, name) == {"watermark": job.id, "done": []}


def test_jobs_left_behind_are_handed_off_oldest_first_and_only_once(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    name = unique("catchup")
    connection_id = airbyte.add_connection(name, source_name=name, streams=["users", "orders"])
    assert sync_one(tmp_path, name, connection_id) == 0
    (first,) = (job.id for job in airbyte.jobs_for(connection_id))
    assert ledger(s3_env, name) == {"watermark": first, "done": []}

    outside = outside_sync(airbyte, connection_id)  # succeeded, never seen by a run
    airbyte.plan_attempts(connection_id, ["failed"])
    nothing = outside_sync(airbyte, connection_id)  # failed before committing: nothing to hand off
    assert airbyte.job(nothing).status == "failed"

    assert sync_one(tmp_path, name, connection_id) == 0
    third = max(job.id for job in airbyte.jobs_for(connection_id))
    for stream in ("users", "orders"):
        handed_off = manifests(s3_env, name, stream)
        assert sorted(handed_off) == [first, outside, third]
        assert all(m["rows"] == 40 for m in handed_off.values())
    assert ledger(s3_env, name) == {"watermark": third, "done": []}

    assert sync_one(tmp_path, name, connection_id) == 0  # nothing is handed off twice
    fourth = max(job.id for job in airbyte.jobs_for(connection_id))
    assert sorted(manifests(s3_env, name, "users")) == [first, outside, third, fourth]


def test_an_older_full_refresh_left_behind_is_superseded_by_the_newer(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    """Of two overwrite snapshots, only the newer is handed off (Airbyte deletes the older generation's files
    once the newer succeeds); the appended stream hands off both."""
    name = unique("snap")
    connection_id = airbyte.add_connection(name, source_name=name, streams=["users", "orders"])
    assert sync_one(tmp_path, name, connection_id) == 0
    airbyte.set_sync_mode(connection_id, "users", "full_refresh", "overwrite")

    outside = outside_sync(airbyte, connection_id)
    assert sync_one(tmp_path, name, connection_id) == 0
    newest = max(job.id for job in airbyte.jobs_for(connection_id))
    users, orders = manifests(s3_env, name, "users"), manifests(s3_env, name, "orders")
    assert outside not in users and newest in users
    assert {outside, newest} <= set(orders)
    rows = {r["stream"]: r for r in latest_artifact_rows() if r["source"] == name and r["status"] == "superseded"}
    assert rows["users"]["detail"] == f"job {outside} a newer full refresh (job {newest}) replaces this snapshot"


def test_when_the_job_list_is_refused_the_awaited_job_is_still_handed_off(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    name = unique("nolist")
    connection_id = airbyte.add_connection(name, source_name=name)
    airbyte.fail_next("POST", "/jobs/list", 403)  # not retryable: the run goes on without the catch-up

    assert sync_one(tmp_path, name, connection_id) == 0

    (job,) = airbyte.jobs_for(connection_id)
    assert sorted(manifests(s3_env, name, "users")) == [job.id]
    # recorded in flight before it was awaited, never recorded as done: the next run checks it again
    assert ledger(s3_env, name) == {"watermark": -1, "done": [], "in_flight": [job.id]}


def test_a_failed_full_refresh_hands_off_its_appended_streams_but_no_partial_snapshot(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    """Applied as an overwrite, part of a snapshot would drop every row it did not reach from silver."""
    name = unique("halfsnap")
    connection_id = airbyte.add_connection(name, source_name=name, streams=["users", "orders"])
    airbyte.set_sync_mode(connection_id, "users", "full_refresh", "overwrite")
    failure = {"failureOrigin": "source", "failureType": "system_error", "externalMessage": "read timed out"}
    airbyte.plan_attempts(connection_id, [{"failed": failure, "committed": True}])

    assert sync_one(tmp_path, name, connection_id) == 1

    (job,) = airbyte.jobs_for(connection_id)
    assert manifests(s3_env, name, "users") == {}
    assert sorted(manifests(s3_env, name, "orders")) == [job.id]
    rows = {r["stream"]: r for r in latest_artifact_rows() if r["source"] == name}
    assert rows["users"]["status"] == "partial_snapshot" and rows["users"]["rows"] == 40
    assert rows["users"]["detail"] == f"job {job.id} failed: part of a full refresh is not a snapshot"
    assert rows["*"]["status"] == "sync_failed" and "read timed out" in rows["*"]["detail"]


def test_a_job_whose_hand_off_failed_is_handed_off_by_the_next_run(
    airbyte: FakeAirbyte, s3_env: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.bronze.handoff as bronze_flow

    name = unique("retry")
    connection_id = airbyte.add_connection(name, source_name=name)
    real = bronze_flow.hand_off_batch_task

    def storage_outage(*args: Any, **kwargs: Any) -> str:
        raise OSError("bronze bucket unreachable")  # what is left after the task's own retries

    monkeypatch.setattr(bronze_flow, "hand_off_batch_task", storage_outage)
    assert sync_one(tmp_path, name, connection_id) == 1
    (first,) = (job.id for job in airbyte.jobs_for(connection_id))
    assert manifests(s3_env, name, "users") == {}
    # not handed off: still in flight, for the next run
    assert ledger(s3_env, name) == {"watermark": -1, "done": [], "in_flight": [first]}

    monkeypatch.setattr(bronze_flow, "hand_off_batch_task", real)
    assert sync_one(tmp_path, name, connection_id) == 0
    second = max(job.id for job in airbyte.jobs_for(connection_id))
    assert sorted(manifests(s3_env, name, "users")) == [first, second]
    assert ledger(s3_env, name) == {"watermark": second, "done": []}
