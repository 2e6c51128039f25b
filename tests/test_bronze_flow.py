"""End to end: ``python -m flows.bronze`` with the real faker connector, on Prefect's real test server,
into a local directory and into a real S3 server. Assertions read the bytes that landed independently
of the project's storage code (pathlib / boto3 + pyarrow).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import FAKER_SOURCE
from deltalake import DeltaTable
from support.seaweed import S3Endpoint

from flows.bronze.flow import ARTIFACT_KEY
from flows.cli import bronze_main as main
from flows.cli import silver_main

pytestmark = [pytest.mark.connector, pytest.mark.usefixtures("prefect_server")]

KEY = re.compile(r"airbyte/faker/(?P<stream>\w+)/(?P<date>\d{4}_\d{2}_\d{2})_(?P<epoch>\d+)_(?P<part>\d+)\.parquet")
STREAMS = {"users", "products", "purchases"}


def write_catalog(path: Path, **source_overrides: Any) -> Path:
    source = {**FAKER_SOURCE, **source_overrides}
    path.write_text(yaml.safe_dump({"sources": [source]}))
    return path


class Landed:
    """What a bronze root holds, read with pathlib or boto3 (not with the project's storage module)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    @classmethod
    def local(cls, root: Path) -> Landed:
        return cls({p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()})

    @classmethod
    def s3(cls, endpoint: S3Endpoint, bucket: str, prefix: str) -> Landed:
        client = endpoint.boto3_client()
        objects = {}
        for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects[item["Key"][len(prefix) + 1 :]] = body
        return cls(objects)

    def parquet(self, stream: str) -> dict[str, pa.Table]:
        return {
            k: pq.read_table(io.BytesIO(v))
            for k, v in self.objects.items()
            if k.startswith(f"airbyte/faker/{stream}/") and k.endswith(".parquet")
        }

    def manifests(self, stream: str) -> list[dict[str, Any]]:
        found = [json.loads(v) for k, v in self.objects.items() if k.startswith(f"airbyte/faker/{stream}/_manifests/")]
        return sorted(found, key=lambda m: m["sync_id"])

    def state(self) -> dict[str, Any]:
        return json.loads(self.objects["_state/airbyte/faker/state.json"])


def assert_batch(landed: Landed, stream: str, sync_id: int) -> pa.Table:
    """Every rule of Airbyte's S3/Parquet output for one stream batch, on the bytes that landed."""
    files = {k: t for k, t in landed.parquet(stream).items() if f"_{sync_id}_" in k}
    assert files, f"no files for {stream} sync {sync_id}"
    for key in files:
        match = KEY.fullmatch(key)
        assert match and match["stream"] == stream and int(match["epoch"]) == sync_id
    table = pa.concat_tables(files.values())
    assert table.column_names[:4] == [
        "_airbyte_raw_id",
        "_airbyte_extracted_at",
        "_airbyte_meta",
        "_airbyte_generation_id",
    ]
    schema = table.schema
    assert schema.field("_airbyte_raw_id").type == pa.string()
    assert schema.field("_airbyte_extracted_at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("_airbyte_meta").type.field("sync_id").type == pa.int64()
    assert pa.types.is_list(schema.field("_airbyte_meta").type.field("changes").type)
    assert schema.field("_airbyte_generation_id").type == pa.int64()
    assert schema.field("id").type == pa.int64()
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {sync_id}
    raw_ids = table.column("_airbyte_raw_id").to_pylist()
    assert len(set(raw_ids)) == len(raw_ids) and all(uuid.UUID(r) for r in raw_ids)
    assert table.column("id").null_count == 0
    manifest = next(m for m in landed.manifests(stream) if m["sync_id"] == sync_id)
    assert manifest["rows"] == table.num_rows
    assert sorted(f["key"] for f in manifest["files"]) == sorted(files)
    assert {f["key"]: f["bytes"] for f in manifest["files"]} == {k: len(landed.objects[k]) for k in files}
    assert all(c["passed"] for c in manifest["checks"]) and len(manifest["checks"]) >= 6
    assert [c["name"] for c in manifest["schema"][:4]] == table.column_names[:4]
    return table


def validated_events(sync_id: int, expected: int = len(STREAMS), timeout: float = 20.0) -> list[Any]:
    """The ``bronze.batch.validated`` events of one sync, read back from the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(EventFilter(event=EventNameFilter(name=["bronze.batch.validated"])), limit=50)
            events = [e for e in page.events if e.payload.get("sync_id") == sync_id]
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def latest_artifact_rows(key: str = ARTIFACT_KEY) -> list[dict[str, Any]]:
    """The rows of the newest run-summary table artifact on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    data = max(artifacts, key=lambda a: a.created).data
    return json.loads(data) if isinstance(data, str) else data


def test_local_default_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    catalog = write_catalog(tmp_path / "catalog.yaml")

    assert main(["--catalog", str(catalog)]) == 0

    landed = Landed.local(tmp_path / "lakehouse" / "bronze")
    sync_id = landed.manifests("users")[0]["sync_id"]
    users = assert_batch(landed, "users", sync_id)
    assert sorted(users.column("id").to_pylist()) == list(range(1, 31))
    assert users.schema.field("address").type.field("city").type == pa.string()
    for stream in ("products", "purchases"):
        assert_batch(landed, stream, sync_id)
    assert not any(k.startswith(".staging") for k in landed.objects)
    events = validated_events(sync_id)
    assert {e.resource["stream"] for e in events} == STREAMS
    for event in events:
        assert event.resource.id == f"bronze.batch.faker.{event.resource['stream']}"
        manifest_path = Path(event.payload["manifest"])
        assert json.loads(manifest_path.read_text())["sync_id"] == sync_id
        assert event.payload["silver_root"].endswith("lakehouse/silver")
    rows = {r["stream"]: r for r in latest_artifact_rows("bronze-ingest-summary")}
    assert rows["users"]["rows"] == 30 and rows["users"]["status"] == "handed_off"
    out = capsys.readouterr().out
    assert "faker.users: 30 rows" in out
    # ... and the demo goes on to silver: one Delta table per stream, one row per primary key.
    assert f"silver faker.users: sync {sync_id} -> " in out
    silver_users = DeltaTable(str(tmp_path / "lakehouse" / "silver" / "faker" / "users")).to_pyarrow_table()
    assert sorted(silver_users.column("id").to_pylist()) == list(range(1, 31))
    assert {m["sync_id"] for m in silver_users.column("_airbyte_meta").to_pylist()} == {sync_id}

    manifest = str(tmp_path / "lakehouse" / "bronze" / "airbyte" / "faker" / "users" / "_manifests" / f"{sync_id}.json")
    assert silver_main(["--manifest", manifest, "--silver", str(tmp_path / "lakehouse" / "silver")]) == 0
    (again,) = latest_artifact_rows("silver-merge-summary")
    assert again["status"] == "already_applied"


def test_incremental_second_run_resumes_from_saved_state(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog.yaml")
    bronze = tmp_path / "bronze"

    assert main(["--catalog", str(catalog), "--bronze", str(bronze)]) == 0
    first = Landed.local(bronze)
    users_state = next(
        s for s in first.state()["stream_states"].values() if s["stream"]["stream_descriptor"]["name"] == "users"
    )
    assert users_state["stream"]["stream_state"]["loop_offset"] == 30

    assert main(["--catalog", str(catalog), "--bronze", str(bronze)]) == 0
    second = Landed.local(bronze)
    first_id, second_id = (m["sync_id"] for m in second.manifests("users"))
    assert second_id > first_id
    # always_updated=false: given its state, faker has nothing new; without state it would re-read all 30.
    assert second.manifests("users")[1]["rows"] == 0
    assert second.state()["last_sync_id"] == second_id
    assert len(second.parquet("users")) == 1


def test_s3_end_to_end_through_the_real_entry_point(tmp_path: Path, s3_env: S3Endpoint) -> None:
    """``python -m flows.bronze`` as a user runs it, against the session's Prefect server and S3 server."""
    from prefect.settings import get_current_settings

    catalog = write_catalog(tmp_path / "catalog.yaml", streams=[{"name": "users"}, {"name": "purchases"}])
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    s3_env.boto3_client().put_object(Bucket="bronze", Key=f"{prefix}/airbyte/faker/users/", Body=b"")  # folder marker
    env = {
        **os.environ,
        **s3_env.env(),
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    command = [sys.executable, "-m", "flows.bronze", "--catalog", str(catalog), "--bronze", f"s3://bronze/{prefix}"]
    result = subprocess.run(
        [*command, "--silver", "s3://silver/x"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "faker.users: 30 rows in 1 file(s)" in result.stdout
    assert s3_env.secret_key not in result.stdout + result.stderr
    landed = Landed.s3(s3_env, "bronze", prefix)
    sync_id = landed.manifests("users")[0]["sync_id"]
    assert len(assert_batch(landed, "users", sync_id)) == 30
    assert_batch(landed, "purchases", sync_id)
    assert not landed.parquet("products")
    manifest = landed.manifests("users")[0]
    assert manifest["bronze_root"] == f"s3://bronze/{prefix}"
    assert all(f["url"].startswith(f"s3://bronze/{prefix}/airbyte/faker/users/") for f in manifest["files"])
    silver = DeltaTable(
        "s3://silver/x/faker/users",
        storage_options={
            "AWS_ENDPOINT_URL": s3_env.url,
            "AWS_ACCESS_KEY_ID": s3_env.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_env.secret_key,
            "AWS_REGION": s3_env.region,
            "AWS_ALLOW_HTTP": "true",
        },
    )
    assert silver.to_pyarrow_table().num_rows == 30
    assert {e.payload["manifest"] for e in validated_events(sync_id, expected=2)} == {
        f"s3://bronze/{prefix}/airbyte/faker/{stream}/_manifests/{sync_id}.json" for stream in ("users", "purchases")
    }


def test_failed_validation_fails_the_run_and_hands_off_only_passing_streams(tmp_path: Path) -> None:
    # purchases.returned_at is always null in faker: declaring it the primary key must fail the PK check.
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        streams=[{"name": "users"}, {"name": "purchases", "primary_key": [["returned_at"]]}],
    )
    bronze = tmp_path / "bronze"

    assert main(["--catalog", str(catalog), "--bronze", str(bronze)]) == 1

    landed = Landed.local(bronze)
    assert landed.manifests("users") and not landed.manifests("purchases")
    assert landed.parquet("purchases"), "the failed batch stays in bronze for inspection"
    stream_states = landed.state()["stream_states"]
    assert "users" in stream_states and "purchases" not in stream_states
    failed = next(r for r in latest_artifact_rows() if r["stream"] == "purchases")
    assert failed["status"] == "failed_validation"
    assert "primary_key_not_null(returned_at)" in failed["detail"] and ".parquet" in failed["detail"]


def test_a_failed_batch_is_quarantined_announced_and_can_be_revalidated_after_a_fix(tmp_path: Path) -> None:
    strict = write_catalog(
        tmp_path / "strict.yaml",
        streams=[{"name": "users", "checks": {"accepted_values": {"gender": ["nobody"]}, "min_records": 1}}],
    )
    bronze, silver = tmp_path / "bronze", tmp_path / "silver"

    assert main(["--catalog", str(strict), "--bronze", str(bronze), "--silver", str(silver)]) == 1

    landed = Landed.local(bronze)
    assert not landed.manifests("users")
    (marker_key,) = [k for k in landed.objects if "/_quarantine/" in k]
    marker = json.loads(landed.objects[marker_key])
    sync_id = marker["sync_id"]
    assert marker["passed"] is False and "accepted_values(gender)" in marker["failure"]
    assert marker["batch"]["records"] == 30
    report = json.loads(landed.objects[f"airbyte/faker/users/_reports/{sync_id}.json"])
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["accepted_values(gender)"]
    assert "30 row(s) outside the accepted values" in report["failure"]
    assert not (silver / "faker" / "users").exists()
    failed_events = _events("bronze.batch.failed", sync_id)
    assert failed_events and failed_events[0].payload["quarantine"].endswith(f"_quarantine/{sync_id}.json")

    relaxed = write_catalog(tmp_path / "relaxed.yaml", streams=[{"name": "users"}])
    args = ["--catalog", str(relaxed), "--bronze", str(bronze), "--silver", str(silver)]
    assert main([*args, "--revalidate", f"faker/users/{sync_id}"]) == 0

    after = Landed.local(bronze)
    assert [m["sync_id"] for m in after.manifests("users")] == [sync_id]
    assert not [k for k in after.objects if "/_quarantine/" in k]
    assert DeltaTable(str(silver / "faker" / "users")).to_pyarrow_table().num_rows == 30
    assert main([*args, "--revalidate", "faker/users/1"]) == 2  # nothing quarantined under that id


def _events(name: str, sync_id: int) -> list[Any]:
    """Events ``name`` of one sync, read back from the Prefect server (they arrive asynchronously)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(EventFilter(event=EventNameFilter(name=[name])), limit=50).events
            mine = [e for e in events if e.payload.get("sync_id") == sync_id]
            if mine or time.monotonic() > deadline:
                return mine
            time.sleep(0.5)


def test_full_refresh_overwrite_replaces_silver_with_the_newest_snapshot(tmp_path: Path) -> None:
    """Real faker, ``full_refresh`` + ``overwrite``: each sync is a new generation and silver becomes that snapshot.

    The second run reads fewer users (count 30 → 12), so rows 13..30 must leave silver: an overwrite is a snapshot,
    not a merge. Bronze keeps both batches, each isolated by its generation id. ``products`` is read in full but
    appended: a new generation each sync too (as on the platform), merged by key, nothing removed.
    """
    users = {"name": "users", "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
    users["primary_key"] = [["id"]]
    products = {"name": "products", "sync_mode": "full_refresh", "destination_sync_mode": "append"}
    bronze, silver = tmp_path / "bronze", tmp_path / "silver"

    def run(count: int) -> int:
        config = {**FAKER_SOURCE["config"], "count": count}
        catalog = write_catalog(tmp_path / f"catalog-{count}.yaml", config=config, streams=[users, products])
        assert main(["--catalog", str(catalog), "--bronze", str(bronze), "--silver", str(silver)]) == 0
        return int(Landed.local(bronze).manifests("users")[-1]["sync_id"])

    first_id = run(30)
    second_id = run(12)
    assert second_id > first_id

    landed = Landed.local(bronze)
    first, second = (assert_batch(landed, "users", sync_id) for sync_id in (first_id, second_id))
    assert set(first.column("_airbyte_generation_id").to_pylist()) == {1}
    assert set(second.column("_airbyte_generation_id").to_pylist()) == {2}
    assert [m["generation_id"] for m in landed.manifests("users")] == [1, 2]
    assert sorted(second.column("id").to_pylist()) == list(range(1, 13))
    assert {k.split("/")[2] for k in landed.objects if k.endswith(".parquet")} == {"users", "products"}
    assert landed.state()["stream_states"] == {} and landed.state()["generations"] == {"users": 2, "products": 2}
    assert [m["generation_id"] for m in landed.manifests("products")] == [1, 2]
    assert [m["rows"] for m in landed.manifests("products")] == [30, 12]
    silver_products = DeltaTable(str(silver / "faker" / "products")).to_pyarrow_table()
    # appended: ids 1..12 merged by faker's primary key (not doubled), 13..30 kept (an append removes nothing)
    assert sorted(silver_products.column("id").to_pylist()) == list(range(1, 31))
    second_generation = [r["id"] for r in silver_products.to_pylist() if r["_airbyte_generation_id"] == 2]
    assert sorted(second_generation) == list(range(1, 13))

    table = DeltaTable(str(silver / "faker" / "users")).to_pyarrow_table()
    assert sorted(table.column("id").to_pylist()) == list(range(1, 13))
    assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {second_id}
    assert set(table.column("_airbyte_generation_id").to_pylist()) == {2}
    by_id = {row["id"]: row for row in second.to_pylist()}
    for row in table.to_pylist():  # silver holds the snapshot's own values, not the first generation's
        assert row["email"] == by_id[row["id"]]["email"] and row["updated_at"] == by_id[row["id"]]["updated_at"]


def test_incremental_updates_merge_into_silver_by_primary_key(tmp_path: Path) -> None:
    """Real faker with ``always_updated``: the second sync re-emits users with newer ``updated_at`` (and adds
    some); silver keeps one row per id, each the newest version bronze received, and nothing else."""
    bronze, silver = tmp_path / "bronze", tmp_path / "silver"

    def run(count: int) -> None:
        config = {**FAKER_SOURCE["config"], "count": count, "always_updated": True}
        catalog = write_catalog(tmp_path / f"catalog-{count}.yaml", config=config, streams=[{"name": "users"}])
        assert main(["--catalog", str(catalog), "--bronze", str(bronze), "--silver", str(silver)]) == 0

    run(30)
    run(40)
    landed = Landed.local(bronze)
    first_id, second_id = (m["sync_id"] for m in landed.manifests("users"))
    first, second = (assert_batch(landed, "users", sync_id) for sync_id in (first_id, second_id))
    assert set(first.column("_airbyte_generation_id").to_pylist()) == {0}  # append: no new generation
    newest: dict[int, dict[str, Any]] = {}
    for row in [*first.to_pylist(), *second.to_pylist()]:  # the reference: the newest updated_at per id
        if row["id"] not in newest or row["updated_at"] > newest[row["id"]]["updated_at"]:
            newest[row["id"]] = row
    assert sorted(newest) == list(range(1, 41))
    assert any(row["id"] <= 30 for row in second.to_pylist()), "faker re-emitted no existing user"

    table = DeltaTable(str(silver / "faker" / "users")).to_pyarrow_table()
    assert sorted(table.column("id").to_pylist()) == list(range(1, 41))
    for row in table.to_pylist():
        expected = newest[row["id"]]
        assert (row["updated_at"], row["email"], row["_airbyte_raw_id"]) == (
            expected["updated_at"],
            expected["email"],
            expected["_airbyte_raw_id"],
        )
