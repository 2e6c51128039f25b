"""Docker-image connectors end to end through ``python -m flows.bronze`` and a real Docker API (Podman here).

The real faker connector runs from an image shaped like Airbyte's (``support/connector_image``): first run,
incremental second run, bronze and silver identical to the same connector installed from PyPI; the container
gets the catalog's network, memory and cpus, and is removed when the run is interrupted or its process killed.
The fake connector image (only ``AIRBYTE_ENTRYPOINT``) covers a connector that fails. Bad input: no Docker API,
an image that is not on the machine, a registry that does not answer.

Skipped, with the reason, where no Docker API answers (``IMAGE_CONNECTOR_TESTS_REQUIRED=1``, set by .ci/run,
turns that into a failure).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
import yaml
from conftest import FAKER_SOURCE
from deltalake import DeltaTable
from support import containers

from flows.cli import bronze_main
from lakehouse_ingest.sources.embedded.connector import private_root

ROOT = Path(__file__).resolve().parent.parent
DATA_COLUMNS = ["id", "name", "email", "age", "gender", "height", "occupation"]


@pytest.fixture(scope="session")
def docker_api() -> None:
    reason = containers.docker_api()
    if reason is not None:
        if os.environ.get("IMAGE_CONNECTOR_TESTS_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def faker_image(docker_api: None) -> str:
    """The faker connector image, built once per machine from the local base image (~3 min the first time)."""
    return containers.faker_image()


@pytest.fixture(scope="session")
def fake_image(docker_api: None) -> str:
    return containers.fake_image()


@pytest.fixture
def no_leftover_containers(docker_api: None) -> Iterator[None]:
    before = set(containers.our_containers())
    yield
    assert set(containers.our_containers()) - before == set(), "every container of the run is removed"


def image_source(image: str, **connector: Any) -> dict[str, Any]:
    return {**FAKER_SOURCE, "connector": {"image": image, "pull": "never", **connector}}


def write_catalog(path: Path, *sources: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump({"sources": list(sources)}))
    return str(path)


def lake(tmp_path: Path, name: str) -> list[str]:
    return ["--bronze", str(tmp_path / name / "bronze"), "--silver", str(tmp_path / name / "silver")]


def bronze_rows(bronze: Path, source: str, stream: str, sync_id: int | None = None) -> list[dict[str, Any]]:
    files = sorted((bronze / "airbyte" / source / stream).glob("*.parquet"))
    table = ds.dataset([str(f) for f in files]).to_table() if files else None
    rows = table.to_pylist() if table is not None else []
    if sync_id is not None:
        rows = [r for r in rows if r["_airbyte_meta"]["sync_id"] == sync_id]
    return sorted(rows, key=lambda r: r["id"])


def manifests(bronze: Path, source: str, stream: str) -> list[dict[str, Any]]:
    folder = bronze / "airbyte" / source / stream / "_manifests"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@pytest.mark.connector
@pytest.mark.usefixtures("prefect_server", "no_leftover_containers")
def test_image_connector_syncs_like_the_pypi_one_first_and_incremental_run(
    tmp_path: Path, faker_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image = image_source(faker_image, network="none", memory="1g", cpus=1)
    catalog = write_catalog(tmp_path / "image.yaml", image)
    assert bronze_main(["--catalog", catalog, *lake(tmp_path, "image")]) == 0
    assert bronze_main(["--catalog", write_catalog(tmp_path / "pypi.yaml", FAKER_SOURCE), *lake(tmp_path, "pypi")]) == 0
    image_bronze, pypi_bronze = tmp_path / "image" / "bronze", tmp_path / "pypi" / "bronze"
    for stream in ("users", "products", "purchases"):
        (first,) = manifests(image_bronze, "faker", stream)
        assert first["rows"] == 30 and first["sync_mode"] == "incremental"
        columns = [c for c in DATA_COLUMNS if c in bronze_rows(image_bronze, "faker", stream)[0]]
        ours = [{c: r[c] for c in columns} for r in bronze_rows(image_bronze, "faker", stream)]
        theirs = [{c: r[c] for c in columns} for r in bronze_rows(pypi_bronze, "faker", stream)]
        assert len(ours) == 30 and ours == theirs, f"{stream}: same rows from the image as from PyPI"
        schema = [(c["name"], c["type"]) for c in first["schema"]]
        assert schema == [(c["name"], c["type"]) for c in manifests(pypi_bronze, "faker", stream)[0]["schema"]]
        silver = DeltaTable(str(tmp_path / "image" / "silver" / "faker" / stream)).to_pyarrow_table()
        assert sorted(silver.column("id").to_pylist()) == list(range(1, 31))
    state = json.loads((image_bronze / "_state" / "airbyte" / "faker" / "state.json").read_text())
    assert state["stream_states"], "connector state committed from the container's STATE messages"

    assert bronze_main(["--catalog", catalog, *lake(tmp_path, "image"), "--no-silver"]) == 0
    second = manifests(image_bronze, "faker", "users")[-1]
    assert second["sync_id"] != first["sync_id"] and second["rows"] == 0, "incremental: nothing new to read"
    assert len(bronze_rows(image_bronze, "faker", "users")) == 30
    assert list(private_root().iterdir()) == [] or all(
        not p.name.startswith(f"{os.getpid()}-") for p in private_root().iterdir()
    ), "the mounted config folder is removed"
    capsys.readouterr()


@pytest.mark.usefixtures("no_leftover_containers")
def test_image_config_is_validated_against_the_images_spec(
    tmp_path: Path, faker_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**image_source(faker_image), "config": {**FAKER_SOURCE["config"], "count": -5}}
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", bad), *lake(tmp_path, "x")])
    err = capsys.readouterr().err.strip()
    assert (
        code == 2 and err.splitlines()[-1] == "error: source 'faker': invalid connector config: count: fails minimum 1"
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.usefixtures("prefect_server", "no_leftover_containers")
def test_image_connector_that_fails_fails_the_sync_with_its_own_message(
    tmp_path: Path, fake_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {
        "name": "fake",
        "connector": {"image": fake_image, "pull": "never"},
        "config": {"records": 5, "api_key": "k-5f0e9b77", "fail_with": "token k-5f0e9b77 expired"},
    }
    bronze = tmp_path / "x" / "bronze"
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", source), *lake(tmp_path, "x")])
    err = capsys.readouterr().err
    assert code == 1 and "token **** expired (config_error)" in err and "k-5f0e9b77" not in err
    assert [p for p in bronze.rglob("*") if p.is_file()] == [], "no partial batch, manifest or state"

    silent = {**source, "config": {"records": 2, "exit_code": 3}}
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", silent), *lake(tmp_path, "y")])
    assert code == 1 and "connector read failed (exit 3)" in capsys.readouterr().err


@pytest.mark.usefixtures("no_leftover_containers")
def test_check_rejecting_the_config_in_a_container_is_bad_input(
    tmp_path: Path, fake_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {
        "name": "fake",
        "connector": {"image": fake_image, "pull": "never"},
        "config": {"records": 1, "check_fails": "role 'reader' may not read schema public"},
    }
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", source), *lake(tmp_path, "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines()[-1] == (
        "error: source 'fake': the connector's check rejected the config: role 'reader' may not read schema public"
    )
    assert not (tmp_path / "x").exists()


def _start_cli(tmp_path: Path, image: str) -> subprocess.Popen[str]:
    slow = image_source(image, memory="512m", cpus=0.5, network="none")
    slow["config"] = {**slow["config"], "count": 10_000_000, "records_per_slice": 1000}
    slow["streams"] = [{"name": "users"}]
    catalog = write_catalog(tmp_path / "slow.yaml", slow)
    from prefect.settings import get_current_settings

    api = str(get_current_settings().api.url)  # the session's test server: no temporary server to start
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_API_URL": api}
    command = [sys.executable, "-m", "flows.bronze", "--catalog", catalog, *lake(tmp_path, "slow"), "--no-silver"]
    return subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_read_container(process: subprocess.Popen[str], timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [n for n in containers.our_containers() if "-read-" in n and f"-{process.pid}-" in n]
        if running:
            return running[0]
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.5)
    raise AssertionError("the read container never started")


def _gone(name: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name not in containers.our_containers():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.connector
@pytest.mark.usefixtures("prefect_server")
def test_interrupting_a_run_removes_its_container_and_writes_nothing(tmp_path: Path, faker_image: str) -> None:
    process = _start_cli(tmp_path, faker_image)
    try:
        name = _wait_for_read_container(process)
        inspected = json.loads(containers.docker("inspect", name).stdout)[0]
        host = inspected["HostConfig"]
        assert host["Memory"] == 512 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
        assert host["NetworkMode"] == "none"
        (mount,) = inspected["Mounts"]
        assert mount["Destination"] == "/airbyte/lakehouse-config" and mount["RW"] is False
        assert "count" not in json.dumps(inspected["Config"]), "the config reaches the container as a file only"
        time.sleep(3)  # records flowing
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0, output[-2000:]
    assert _gone(name), f"container {name} removed"
    bronze = tmp_path / "slow" / "bronze" / "airbyte" / "faker" / "users"
    assert not list(bronze.glob("*.parquet")) and not list(bronze.glob("_manifests/*")), "nothing half-written"


@pytest.mark.connector
@pytest.mark.usefixtures("prefect_server")
def test_a_killed_run_leaves_no_container_behind(tmp_path: Path, faker_image: str) -> None:
    process = _start_cli(tmp_path, faker_image)
    try:
        name = _wait_for_read_container(process)
        process.kill()  # kill -9 of the flow process alone: no cleanup of its own can run
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert _gone(name), f"container {name} removed by the watchdog"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what may remain of the run's process group (its docker CLI)


def test_no_docker_api_is_bad_input_naming_what_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    source = image_source("airbyte/source-postgres:3.6.22")
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", source), *lake(tmp_path, "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: no Docker API answers at unix://{tmp_path}/no-such.sock (")
    assert err.endswith(
        "image connectors need the docker CLI and a Docker API: Docker, or Podman's "
        "`podman system service` with DOCKER_HOST=unix:///run/podman/podman.sock"
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.usefixtures("no_leftover_containers")
def test_an_image_not_on_the_machine_with_pull_never_names_the_tags_there(
    tmp_path: Path, faker_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = faker_image.rsplit(":", 1)[0] + ":9.9"
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", image_source(missing)), *lake(tmp_path, "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"error: no image {missing} on this machine (pull: never); on this machine: 7.2.1"
    assert not (tmp_path / "x").exists()


@pytest.mark.usefixtures("docker_api", "no_leftover_containers")
def test_a_registry_that_does_not_answer_is_retryable_not_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {**FAKER_SOURCE, "connector": {"image": "127.0.0.1:9/airbyte/source-nope:1.0"}}
    code = bronze_main(["--catalog", write_catalog(tmp_path / "c.yaml", source), *lake(tmp_path, "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith(
        "error: could not pull 127.0.0.1:9/airbyte/source-nope:1.0: the registry did not answer ("
    )
    log = Path(err[-1].rsplit("(log: ", 1)[1].rstrip(")"))
    assert "127.0.0.1:9" in log.read_text()
    assert not (tmp_path / "x").exists()
