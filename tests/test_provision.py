"""Provisioning (``python -m deployments.provision``) against the fake Airbyte server: real HTTP on loopback, every
request and response checked against the official OpenAPI spec, write requests counted on the server.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.fake_airbyte import (
    FAKER_DEFINITION_ID,
    S3_DEFINITION_ID,
    SECRET_MASK,
    FakeAirbyte,
    FakeStream,
    airbyte_s3_writer,
)
from support.fake_airbyte.payloads import discovered as _discovered
from support.seaweed import S3Endpoint

from deployments.provision import main
from lakehouse_ingest.lake.keys import DATA_FILE, data_key
from lakehouse_ingest.lake.names import to_alphanumeric_and_underscore
from lakehouse_ingest.lake.roots import open_storage
from lakehouse_ingest.provisioning.diff import diff_config, diff_connection
from lakehouse_ingest.provisioning.render import scrub
from lakehouse_ingest.provisioning.target import PATH_FORMAT, S3Target
from lakehouse_ingest.sources.airbyte.provisioning_models import ConnectionConfig, DiscoveredCatalog, StreamSyncConfig
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings
from lakehouse_ingest.sources.airbyte.syncs import run_connection_sync
from lakehouse_ingest.sources.platform.job_files import job_batches

KEY_ID, SECRET = "minio-key-id-1", "minio-secret-value-1"
SOURCE_SECRET = "shop-api-secret-42"
CONFIG = "/api/v1"

CATALOG = """\
sources:
  - name: shop
    connection_name: shop-bronze
    airbyte:
      source_name: Shop DB
    streams:
      - name: users
        sync_mode: incremental
        cursor_field: [updated_at]
        primary_key: [[id]]
        checks: {min_records: 1}
      - name: products
        sync_mode: full_refresh
        destination_sync_mode: overwrite
  - name: legacy
    connection_id: 00000000-0000-4000-8000-000000000001
"""


@pytest.fixture
def fake() -> Iterator[FakeAirbyte]:
    with FakeAirbyte(job_seconds=0.2, pending_seconds=0.01) as server:
        server.add_workspace("Default Workspace")
        yield server
    assert server.spec_violations == [], server.spec_violations
    assert server.errors == [], server.errors


def env_for(fake: FakeAirbyte, **extra: str) -> dict[str, str]:
    return {
        "AIRBYTE_URL": fake.url,
        "BRONZE_URI": "s3://bronze",
        "AIRBYTE_S3_ENDPOINT": "http://minio:9000",
        "AIRBYTE_S3_ACCESS_KEY_ID": KEY_ID,
        "AIRBYTE_S3_SECRET_ACCESS_KEY": SECRET,
        "SHOP_KEY": SOURCE_SECRET,
        **extra,
    }


def provision(
    fake: FakeAirbyte, tmp_path: Path, catalog: str = CATALOG, *args: str, **env: str
) -> tuple[int, str, str]:
    path = tmp_path / f"catalog-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(catalog, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--catalog", str(path), *args], env=env_for(fake, **env), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def writes(fake: FakeAirbyte) -> list[str]:
    return [r.path.removeprefix(CONFIG + "/") for r in fake.write_requests()]


def only_destination(fake: FakeAirbyte) -> Any:
    (destination,) = fake.destinations.values()
    return destination


def only_connection(fake: FakeAirbyte) -> Any:
    (connection,) = [c for c in fake.connections.values() if c.catalog is not None]
    return connection


def selected(connection: Any) -> dict[str, dict[str, Any]]:
    return {i["stream"]["name"]: i["config"] for i in connection.catalog if i["config"]["selected"]}


def no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in (KEY_ID, SECRET, SOURCE_SECRET):
            assert secret not in text


# -- first run, second run, changes ----------------------------------------------------------------------------
def test_first_run_creates_destination_and_connection(fake: FakeAirbyte, tmp_path: Path) -> None:
    source_id = fake.add_source("Shop DB", config={"api_key": SOURCE_SECRET, "host": "db"})
    code, out, err = provision(fake, tmp_path)
    assert (code, err) == (0, ""), err
    assert writes(fake) == ["destinations/create", "connections/create"]
    no_secret_in(out)
    assert "legacy: skipped" in out

    destination = only_destination(fake)
    assert destination.name == "lakehouse-bronze-shop" and destination.definition_id == S3_DEFINITION_ID
    assert destination.config == {
        "s3_bucket_name": "bronze",
        "s3_bucket_path": "airbyte/shop",
        "s3_bucket_region": "",
        "s3_path_format": "${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_",
        "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"},
        "s3_endpoint": "http://minio:9000",
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
    }
    connection = only_connection(fake)
    assert connection.name == "shop-bronze"
    assert (connection.source_id, connection.destination_id) == (source_id, destination.actor_id)
    assert (connection.schedule_type, connection.namespace_definition, connection.prefix, connection.status) == (
        "manual",
        "destination",
        "",
        "active",
    )
    streams = selected(connection)
    assert set(streams) == {"users", "products"}  # purchases is discovered but not selected
    assert streams["users"]["syncMode"] == "incremental" and streams["users"]["destinationSyncMode"] == "append"
    assert streams["users"]["cursorField"] == ["updated_at"] and streams["users"]["primaryKey"] == [["id"]]
    assert streams["products"]["syncMode"] == "full_refresh"
    assert streams["products"]["destinationSyncMode"] == "overwrite"
    # aliasName as the platform computes it (CatalogConverter.toApi); never a stream's name
    assert all(s["aliasName"] == to_alphanumeric_and_underscore(name) for name, s in streams.items())

    # The runtime resolves the same connection by name and sees the same sync settings.
    with AirbyteSettings(url=fake.url).client() as client:
        found = client.find_connection("shop-bronze")
    assert {(s.name, s.sync_mode, s.destination_sync_mode, s.cursor_field) for s in found.streams} == {
        ("users", "incremental", "append", ("updated_at",)),
        ("products", "full_refresh", "overwrite", ()),
    }


def test_path_format_yields_the_bronze_layout() -> None:
    """The destination's bucket path + path format + default file name give the key platform.py finds."""
    target = S3Target.from_env("s3://bronze", {})
    config = target.destination_config("shop")
    started = datetime(2025, 1, 15, 0, 0, 0, tzinfo=UTC)
    epoch = int(started.timestamp() * 1000)
    variables = {"STREAM_NAME": "users", "YEAR": "2025", "MONTH": "01", "DAY": "15", "EPOCH": str(epoch)}
    path = re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], config["s3_path_format"])
    key = f"{config['s3_bucket_path']}/{path}" + "0.parquet"  # default file name: {part_number}{format_extension}
    assert key == data_key("shop", "users", started, 0) == f"airbyte/shop/users/2025_01_15_{epoch}_0.parquet"
    assert DATA_FILE.fullmatch(key.rsplit("/", 1)[1])
    assert "${NAMESPACE}" not in PATH_FORMAT and "file_name_pattern" not in config
    prefixed = S3Target.from_env("s3://lake/bronze/", {}).destination_config("shop")
    assert (prefixed["s3_bucket_name"], prefixed["s3_bucket_path"]) == ("lake", "bronze/airbyte/shop")


def test_second_run_writes_nothing(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB", config={"api_key": SOURCE_SECRET})
    assert provision(fake, tmp_path)[0] == 0
    before = len(fake.write_requests())
    code, out, err = provision(fake, tmp_path)
    assert (code, err) == (0, "")
    assert len(fake.write_requests()) == before == 2
    assert "shop: destination 'lakehouse-bronze-shop': unchanged" in out
    assert "shop: connection 'shop-bronze': unchanged" in out
    assert out.rstrip().endswith("done: nothing to change")


def test_changed_catalog_updates_the_connection(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    assert provision(fake, tmp_path)[0] == 0
    changed = CATALOG.replace("cursor_field: [updated_at]", "cursor_field: [id]").replace(
        "      - name: products\n", "      - name: purchases\n      - name: products\n"
    )
    code, out, _ = provision(fake, tmp_path, changed, "--dry-run")
    assert code == 0 and writes(fake) == ["destinations/create", "connections/create"]
    assert "shop: connection 'shop-bronze': update" in out
    assert '    streams.users.cursor_field: ["updated_at"] -> ["id"]' in out
    assert '    streams.purchases: (not synced) -> incremental/append cursor ["updated_at"] pk [["id"]]' in out
    assert "plan: 0 to create, 1 to update, 1 unchanged (dry run: nothing written)" in out

    code, out, err = provision(fake, tmp_path, changed)
    assert (code, err) == (0, "")
    assert writes(fake)[2:] == ["connections/update"]
    streams = selected(only_connection(fake))
    assert set(streams) == {"users", "purchases", "products"}
    assert streams["users"]["cursorField"] == ["id"]
    assert provision(fake, tmp_path, changed)[0] == 0 and len(writes(fake)) == 3  # converged

    # Dropping a stream from the catalog deselects it.
    dropped = CATALOG.replace("      - name: products\n        sync_mode: full_refresh\n", "      - name: products_x\n")
    dropped = dropped.replace("        destination_sync_mode: overwrite\n", "").replace("products_x", "products")
    code, out, _ = provision(fake, tmp_path, dropped)
    assert code == 0 and "    streams.purchases: incremental/append" in out and "-> (not synced)" in out
    assert "    streams.products.sync_mode: full_refresh -> incremental" in out
    assert set(selected(only_connection(fake))) == {"users", "products"}


def test_connection_settings_changed_by_hand_are_restored(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    assert provision(fake, tmp_path)[0] == 0
    connection = only_connection(fake)
    with fake._lock:
        connection.schedule_type, connection.prefix, connection.status = "cron", "raw_", "inactive"
        connection.namespace_definition, connection.namespace_format = "customformat", "${SOURCE_NAMESPACE}"
    code, out, _ = provision(fake, tmp_path)
    assert code == 0
    for line in ("scheduleType: cron -> manual", 'prefix: raw_ -> ""', "status: inactive -> active"):
        assert f"    {line}" in out
    assert "namespaceDefinition: customformat -> destination" in out
    update = fake.requests_to("/connections/update")[-1].json
    assert "syncCatalog" not in update  # the streams did not change: their catalog is left alone
    assert (connection.schedule_type, connection.prefix, connection.status) == ("manual", "", "active")
    assert connection.namespace_definition == "destination"


def test_connection_by_id_is_updated_in_place(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    assert provision(fake, tmp_path)[0] == 0
    connection_id = only_connection(fake).connection_id
    by_id = CATALOG.replace("connection_name: shop-bronze", f"connection_id: {connection_id}")
    code, out, _ = provision(fake, tmp_path, by_id)
    assert code == 0 and len(writes(fake)) == 2
    assert f"shop: connection 'shop-bronze': unchanged ({connection_id})" in out


# -- destination drift and secrets -------------------------------------------------------------------------------
def test_destination_drift_is_corrected_and_masked_secrets_are_no_diff(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    drifted = S3Target.from_env("s3://bronze", env_for(fake)).destination_config("shop")
    drifted["s3_path_format"] = "${NAMESPACE}/${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_"
    drifted["file_name_pattern"] = "{sync_id}"
    drifted["format"] = {"format_type": "Parquet", "compression_codec": "UNCOMPRESSED", "block_size_mb": 128}
    destination_id = fake.add_destination("lakehouse-bronze-shop", drifted)

    code, out, err = provision(fake, tmp_path, CATALOG, "--dry-run")
    assert (code, err) == (0, "") and writes(fake) == []
    assert f"shop: destination 'lakehouse-bronze-shop': update ({destination_id})" in out
    assert "    s3_path_format: ${NAMESPACE}/${STREAM_NAME}/" in out
    assert "    format.compression_codec: UNCOMPRESSED -> SNAPPY" in out
    assert "    file_name_pattern: {sync_id} -> (unset)" in out
    assert "access_key_id" not in out and "secret_access_key" not in out  # masked on read, so no diff
    no_secret_in(out)

    assert provision(fake, tmp_path)[0] == 0
    assert writes(fake) == ["destinations/update", "connections/create"]
    stored = fake.destinations[destination_id].config
    assert stored["s3_path_format"] == PATH_FORMAT and "file_name_pattern" not in stored
    assert (stored["access_key_id"], stored["secret_access_key"]) == (KEY_ID, SECRET)
    update = fake.requests_to("/destinations/update")[0].json
    assert update["connectionConfiguration"]["secret_access_key"] == SECRET  # sent in clear, over the wire only

    # Masked secrets on read are not a perpetual diff...
    assert provision(fake, tmp_path)[0] == 0 and len(writes(fake)) == 2
    # ...so a rotated key is only sent with --update-secrets.
    code, out, _ = provision(fake, tmp_path, CATALOG, AIRBYTE_S3_SECRET_ACCESS_KEY="rotated-secret-2")
    assert code == 0 and len(writes(fake)) == 2
    code, out, _ = provision(
        fake, tmp_path, CATALOG, "--update-secrets", AIRBYTE_S3_SECRET_ACCESS_KEY="rotated-secret-2"
    )
    assert code == 0 and writes(fake)[2:] == ["destinations/update"]
    assert "    secret_access_key: *** -> *** (rewritten)" in out and "rotated-secret-2" not in out
    assert fake.destinations[destination_id].config["secret_access_key"] == "rotated-secret-2"


def test_source_is_created_from_definition_and_config(fake: FakeAirbyte, tmp_path: Path) -> None:
    catalog = CATALOG.replace(
        "      source_name: Shop DB\n",
        "      source_name: Shop API\n"
        f"      source_definition_id: {FAKER_DEFINITION_ID}\n"
        "      source_config: {api_key: '${SHOP_KEY}', count: 10, nested: {password: '${SHOP_KEY}', port: 5432}}\n",
    )
    code, out, err = provision(fake, tmp_path, catalog, "--dry-run")
    assert (code, err) == (0, "") and writes(fake) == []
    assert "shop: source 'Shop API': create" in out
    assert "    api_key: ***" in out and "    nested.password: ***" in out and "    count: 10" in out
    no_secret_in(out)
    assert fake.requests_to("/scheduler/sources/discover_schema")  # validated before the source exists

    code, out, err = provision(fake, tmp_path, catalog)
    assert (code, err) == (0, ""), err
    assert writes(fake) == ["sources/create", "destinations/create", "connections/create"]
    (source,) = fake.sources.values()
    assert source.config == {"api_key": SOURCE_SECRET, "count": 10, "nested": {"password": SOURCE_SECRET, "port": 5432}}
    assert only_connection(fake).source_id == source.actor_id
    no_secret_in(out)

    assert provision(fake, tmp_path, catalog)[0] == 0 and len(writes(fake)) == 3  # masked api_key: no diff
    code, out, _ = provision(fake, tmp_path, catalog.replace("count: 10", "count: 20"))
    assert code == 0 and writes(fake)[3:] == ["sources/update"]
    assert "    count: 10 -> 20" in out
    assert source.config["api_key"] == SOURCE_SECRET and source.config["count"] == 20


# -- bad input: exit 2, one line, nothing written ----------------------------------------------------------------
PRODUCTS = "- name: products\n        sync_mode: full_refresh\n"
NO_CURSOR = FakeStream("events", default_cursor_field=(), source_defined_primary_key=())
FULL_ONLY = FakeStream("audit", supported_sync_modes=("full_refresh",))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("- name: products\n", "- name: nope\n"), r"stream 'nope' is not in the Airbyte source's catalog \(it has: "),
        (("source_name: Shop DB", "source_name: Nobody"), "no Airbyte source named 'Nobody' in workspace"),
        ((PRODUCTS, "- name: audit\n        sync_mode: incremental\n"), "sync_mode incremental is not"),
        (
            (PRODUCTS, "- name: events\n        sync_mode: incremental\n"),
            "incremental needs a cursor_field",
        ),
        (("- name: products\n", "- name: users2\n"), "stream 'users2' is not in"),
        (("primary_key: [[id]]", "primary_key: [[name]]"), r"the source defines its primary key \[\['id'\]\]"),
        (
            ("        sync_mode: full_refresh\n", "        sync_mode: full_refresh\n        cursor_field: [x]\n"),
            "applies",
        ),
        (
            ("      source_name: Shop DB\n", "      source_name: Shop DB\n      workspace: Other\n"),
            "no workspace named",
        ),
        (
            ("      source_name: Shop DB\n", "      source_id: 00000000-0000-4000-8000-000000000009\n"),
            "no Airbyte source with id",
        ),
        (
            ("    connection_name: shop-bronze\n", "    connection_id: 00000000-0000-4000-8000-000000000002\n"),
            "does not exist",
        ),
        (("    airbyte:\n      source_name: Shop DB\n", ""), "stream sync settings belong to embedded sources"),
        (("source_name: Shop DB", "source_name: Shop DB\n      source_config: {a: 1}"), "go together"),
        (("sync_mode: incremental", "sync_mod: incremental"), r"streams\.0\.sync_mod: Extra inputs"),
    ],
)
def test_bad_declarations_exit_2_before_any_write(
    fake: FakeAirbyte, tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    fake.add_source("Shop DB", streams=["users", "products", "purchases", NO_CURSOR, FULL_ONLY])
    catalog = CATALOG.replace(*edit)
    assert catalog != CATALOG
    code, out, err = provision(fake, tmp_path, catalog)
    assert code == 2, (out, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and re.search(message, err), err
    assert writes(fake) == []


def test_bad_settings_exit_2(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    code, _, err = provision(fake, tmp_path, CATALOG, BRONZE_URI="./lakehouse/bronze")
    assert code == 2 and "must be s3://bucket[/prefix]" in err and len(err.splitlines()) == 1
    code, _, err = provision(fake, tmp_path, CATALOG, AIRBYTE_S3_SECRET_ACCESS_KEY="", AWS_SECRET_ACCESS_KEY="")
    assert code == 2 and "go together" in err
    code, _, err = provision(fake, tmp_path, CATALOG, AIRBYTE_URL="")
    assert code == 2 and "AIRBYTE_URL is not set" in err
    code, _, err = provision(fake, tmp_path, CATALOG, "--source", "nope")
    assert code == 2 and "unknown source 'nope'" in err
    code, out, err = provision(fake, tmp_path, CATALOG, "--source", "legacy")
    assert code == 2 and "legacy: skipped" in out and "no source of the catalog has an 'airbyte:' block" in err
    assert writes(fake) == []


def test_server_state_that_contradicts_the_catalog_exits_2(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    assert provision(fake, tmp_path)[0] == 0
    fake.add_destination(
        "elsewhere", {"s3_bucket_name": "x", "s3_bucket_path": "y", "s3_bucket_region": "", "format": {}}
    )
    moved = CATALOG.replace(
        "      source_name: Shop DB\n", "      source_name: Shop DB\n      destination_name: elsewhere\n"
    )
    code, _, err = provision(fake, tmp_path, moved)
    assert code == 2 and "Airbyte cannot move a connection" in err
    fake.add_workspace("Second")
    code, _, err = provision(fake, tmp_path)
    assert code == 2 and "2 workspaces; name one in airbyte.workspace" in err
    assert len(writes(fake)) == 2


def test_paged_actor_lists_are_followed(tmp_path: Path) -> None:
    with FakeAirbyte(job_seconds=0.2, actor_page_size=2) as fake:
        fake.add_workspace("Default Workspace")
        for index in range(4):
            fake.add_source(f"Other {index}")
            fake.add_destination(f"other-{index}", {"s3_bucket_name": "x"})
        fake.add_source("Shop DB")
        assert provision(fake, tmp_path)[0] == 0
        code, out, err = provision(fake, tmp_path)
        assert (code, err) == (0, "") and "done: nothing to change" in out
        assert writes(fake) == ["destinations/create", "connections/create"]  # found on page 3 the second time
        assert [r.json.get("cursor") is not None for r in fake.requests_to("/destinations/list")][:3] == [
            False,
            True,
            True,
        ]
        assert fake.spec_violations == []


def test_two_sources_with_the_same_name_are_refused(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    fake.add_source("Shop DB")
    code, _, err = provision(fake, tmp_path)
    assert code == 2 and "2 Airbyte sources are named 'Shop DB'; keep one" in err and writes(fake) == []


# -- server errors -----------------------------------------------------------------------------------------------
def test_failed_create_is_not_retried_and_exits_1_without_secrets(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    body = {"message": f"Internal Server Error: cannot reach http://{KEY_ID}:{SECRET}@minio:9000"}
    fake.fail_next("POST", "/destinations/create", 502, body=body)
    code, out, err = provision(fake, tmp_path)
    assert code == 1 and len(err.splitlines()) == 1
    assert "HTTP 502" in err and "POST" in err and "/api/v1/destinations/create" in err
    no_secret_in(out, err)
    assert len(fake.requests_to("/destinations/create")) == 1  # a lost create is never sent twice
    assert fake.destinations == {}
    code, _, err = provision(fake, tmp_path)  # a re-run converges
    assert (code, err) == (0, "") and len(fake.destinations) == 1 and len(fake.connections) == 1


def test_conflict_and_rejection_exit_1(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    fake.fail_next("POST", "/connections/create", 409, body={"message": "Connection already exists"})
    code, _, err = provision(fake, tmp_path)
    assert code == 1 and "conflict" in err and "HTTP 409" in err and len(err.splitlines()) == 1
    assert len(fake.destinations) == 1 and writes(fake) == ["destinations/create", "connections/create"]
    fake.fail_next("POST", "/connections/create", 422, body={"message": "Some properties contained invalid input."})
    code, _, err = provision(fake, tmp_path)
    assert code == 1 and "HTTP 422" in err
    assert provision(fake, tmp_path)[0] == 0 and len(fake.destinations) == 1


def test_transient_read_errors_are_retried(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    fake.fail_next("POST", "/sources/list", 503, count=2, retry_after=0)
    code, _, err = provision(fake, tmp_path)
    assert (code, err) == (0, "")
    assert len(fake.requests_to("/sources/list")) == 3


def test_discover_failure_exits_1(fake: FakeAirbyte, tmp_path: Path) -> None:
    source_id = fake.add_source("Shop DB")
    fake.fail_discover(source_id, "Could not connect to the database: timeout")
    code, _, err = provision(fake, tmp_path)
    assert code == 1 and "discovering the schema of source" in err and "Could not connect" in err
    assert writes(fake) == []


# -- units -------------------------------------------------------------------------------------------------------
def test_diff_config_semantics() -> None:
    desired = {"a": 1, "token": "t", "nested": {"b": 2, "password": "p"}}
    assert (
        diff_config(desired, {"a": 1, "token": SECRET_MASK, "nested": {"b": 2, "password": SECRET_MASK}}, (), False)
        == []
    )
    changed = diff_config(desired, {"a": 2, "nested": {"b": 2, "password": "other", "c": 9}}, (), False)
    assert [(c.path, c.before, c.after) for c in changed] == [
        ("a", "2", "1"),
        ("token", "(unset)", "***"),
        ("nested.password", "***", "***"),
    ]
    assert scrub(f"x {SECRET} y {KEY_ID}", [SECRET, KEY_ID, ""]) == "x *** y ***"


def test_source_defined_cursor_and_key_stored_empty_are_no_diff() -> None:
    stream = FakeStream("events", source_defined_cursor=True, default_cursor_field=("seq",))
    catalog = DiscoveredCatalog.from_config_api({"catalog": {"streams": [_discovered(stream)]}})
    wanted = {"events": StreamSyncConfig("incremental", "append", ("seq",), (("id",),))}
    stored = ConnectionConfig(
        "c", "n", None, "s", "d", "active", "destination", None, "", "manual",
        {"events": StreamSyncConfig("incremental", "append", (), ())},
    )  # fmt: skip
    assert diff_connection(stored, "n", wanted, catalog) == []
    assert [c.path for c in diff_connection(stored, "n", wanted)] == [
        "streams.events.cursor_field",
        "streams.events.primary_key",
    ]


def test_local_endpoint_note(fake: FakeAirbyte, tmp_path: Path) -> None:
    fake.add_source("Shop DB")
    code, out, _ = provision(
        fake, tmp_path, CATALOG, "--dry-run", AIRBYTE_S3_ENDPOINT="", AWS_ENDPOINT_URL="http://localhost:9000"
    )
    assert code == 0 and "note: the S3 endpoint http://localhost:9000 is what Airbyte connects to" in out


# -- end to end: provision, sync, find the job's files where platform.py looks -----------------------------------
def test_provisioned_connection_lands_files_the_platform_finds(
    s3: S3Endpoint, s3_env: S3Endpoint, tmp_path: Path
) -> None:
    source = f"prov{uuid.uuid4().hex[:8]}"
    catalog = CATALOG.replace("name: shop\n", f"name: {source}\n")
    with FakeAirbyte(job_seconds=0.1, pending_seconds=0.01, writer=airbyte_s3_writer(s3, "bronze", 20)) as fake:
        fake.add_workspace("Default Workspace")
        fake.add_source("Shop DB")
        code, _, err = provision(fake, tmp_path, catalog)
        assert (code, err) == (0, ""), err
        connection_id = only_connection(fake).connection_id
        with AirbyteSettings(url=fake.url).client() as client:
            connection = client.get_connection(connection_id)
            run = run_connection_sync(
                client, connection_id, logging.getLogger("test.provision"), poll_interval=0.05, timeout=20
            )
        assert fake.spec_violations == []
    bronze = open_storage("s3://bronze")
    try:
        batches = job_batches(bronze, source, connection, run.job)
    finally:
        bronze.close()
    assert set(batches) == {"users", "products"}
    for name, batch in batches.items():
        assert batch.records == 20 and sum(f.rows for f in batch.files) == 20
        assert all(f.key.startswith(f"airbyte/{source}/{name}/") for f in batch.files)
    assert batches["users"].sync_mode == "incremental" and batches["users"].cursor_field == ["updated_at"]
