"""Bad input gets one clear line on stderr, exit code 2, and nothing written; connector failures exit 1
with the connector's own message and leave no partial batch behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAKER_SOURCE

from flows.cli import bronze_main as main

FAKE_CONNECTOR = Path(__file__).parent / "support" / "fake_connector.py"
FAKE = {"package": "airbyte-source-fake", "version": "0.0.1"}


@pytest.fixture
def fake_connector_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A connector cache holding the protocol-speaking fake connector, as if pip had installed it."""
    venv = tmp_path / "connectors" / "airbyte-source-fake-0.0.1"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "source-fake"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CONNECTOR}" "$@"\n')
    exe.chmod(0o755)
    (venv / ".installed").write_text("airbyte-source-fake==0.0.1\n")
    monkeypatch.setenv("CONNECTOR_CACHE_DIR", str(tmp_path / "connectors"))
    return tmp_path / "connectors"


@pytest.fixture
def fake_and_faker_cache(fake_connector_cache: Path, connector_cache_dir: Path) -> Path:
    """The fake connector's cache, with the real faker connector's virtualenv linked in beside it."""
    faker = connector_cache_dir / "airbyte-source-faker-7.2.1"
    (fake_connector_cache / faker.name).symlink_to(faker, target_is_directory=True)
    return fake_connector_cache


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: the default lake (./lakehouse) would be created here."""
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


def catalog(path: Path, *sources: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump({"sources": list(sources)}))
    return str(path)


def nothing_written(workdir: Path) -> bool:
    return not (workdir / "lakehouse").exists() and [p.name for p in workdir.iterdir()] == ["catalog.yaml"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    ("sources", "args", "message"),
    [
        ([FAKER_SOURCE], ["--source", "nope"], "unknown source 'nope'; the catalog has: faker"),
        ([{**FAKER_SOURCE, "name": ".."}], [], "invalid source name '..'"),
        ([{**FAKER_SOURCE, "name": "a/b"}], [], "invalid source name 'a/b'"),
        ([{**FAKER_SOURCE, "name": ""}], [], "invalid source name ''"),
        ([FAKER_SOURCE, FAKER_SOURCE], [], "source names must be unique"),
        ([{**FAKER_SOURCE, "conector": {}}], [], "sources.0.conector: Extra inputs are not permitted"),
        ([FAKER_SOURCE], ["--bronze", "gs://bucket/x"], "unsupported storage URI 'gs://bucket/x'"),
        ([FAKER_SOURCE], ["--silver", "s3://No_Such"], "invalid S3 bucket name"),
    ],
)
def test_bad_catalog_or_arguments_exit_2_and_write_nothing(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    sources: list[dict[str, Any]],
    args: list[str],
    message: str,
) -> None:
    code, err = run(["--catalog", catalog(workdir / "catalog.yaml", *sources), *args], capsys)
    assert code == 2
    assert message in err and len(err.splitlines()) == 1
    assert nothing_written(workdir)


def test_malformed_yaml_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "catalog.yaml"
    path.write_text("sources:\n  - name: faker\n    config: {count: 3\n")
    code, err = run(["--catalog", str(path)], capsys)
    assert (code, err.startswith(f"error: catalog {path} is not valid YAML at line")) == (2, True)
    assert nothing_written(workdir)


def test_missing_catalog_file_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["--catalog", str(workdir / "absent.yaml")], capsys)
    assert code == 2 and "cannot read catalog" in err and "No such file" in err


@pytest.mark.connector
def test_invalid_connector_config_is_refused_by_the_connector_spec(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**FAKER_SOURCE, "config": {**FAKER_SOURCE["config"], "count": -5}}
    code, err = run(["--catalog", catalog(workdir / "catalog.yaml", bad)], capsys)
    assert code == 2
    assert err == "error: source 'faker': invalid connector config: count: fails minimum 1"
    assert nothing_written(workdir)


@pytest.mark.usefixtures("fake_connector_cache")
def test_config_errors_never_echo_secret_values(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = {"name": "fake", "connector": FAKE, "config": {"records": 1, "api_key": 123456789}}
    code, err = run(["--catalog", catalog(workdir / "catalog.yaml", source)], capsys)
    assert code == 2 and "api_key: fails type 'string'" in err
    assert "123456789" not in err
    assert nothing_written(workdir)


@pytest.mark.usefixtures("fake_connector_cache", "prefect_server")
def test_stream_name_escaping_the_layout_exit_2_and_nothing_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"name": "fake", "connector": FAKE, "config": {"records": 3, "stream_name": "../../etc"}}
    code, err = run(["--catalog", catalog(workdir / "catalog.yaml", source)], capsys)
    assert code == 2
    assert "stream name '../../etc' would escape the bronze layout" in err
    assert nothing_written(workdir)


@pytest.mark.usefixtures("fake_connector_cache", "prefect_server")
def test_connector_error_fails_with_its_own_message_and_rolls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {
        "name": "fake",
        "connector": FAKE,
        "config": {"records": 25, "fail_with": "token expired for account 42"},
    }
    bronze = tmp_path / "bronze"
    code, err = run(["--catalog", catalog(tmp_path / "catalog.yaml", source), "--bronze", str(bronze)], capsys)
    assert code == 1
    assert "token expired for account 42 (config_error)" in err
    leftovers = [p for p in bronze.rglob("*") if p.is_file()] if bronze.exists() else []
    assert leftovers == [], "no partial data, manifest or state after a failed sync"


@pytest.mark.usefixtures("fake_connector_cache", "prefect_server")
def test_connector_exiting_non_zero_fails_the_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = {"name": "fake", "connector": FAKE, "config": {"records": 2, "exit_code": 3}}
    code, err = run(["--catalog", catalog(tmp_path / "catalog.yaml", source), "--bronze", str(tmp_path / "b")], capsys)
    assert code == 1 and "connector read failed (exit 3)" in err


def test_cli_help_and_argument_errors_through_the_real_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    shown = subprocess.run(
        [sys.executable, "-m", "flows.bronze", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert shown.returncode == 0
    assert "--source NAME" in shown.stdout and "--catalog FILE" in shown.stdout and "--bronze URI" in shown.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "flows.bronze", "--sauce", "x"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert wrong.returncode == 2 and "unrecognized arguments: --sauce" in wrong.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "flows.bronze", "--bronze", "ftp://x"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "error: unsupported storage URI 'ftp://x': use a directory or s3://bucket[/prefix]"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("fake_and_faker_cache")
def test_a_config_the_connectors_check_rejects_exit_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejected = {
        "name": "fake",
        "connector": FAKE,
        "config": {"records": 1, "api_key": "k-123456", "check_fails": "invalid api key k-123456 for account 42"},
    }
    faker = {**FAKER_SOURCE, "streams": [{"name": "products"}]}
    bronze = tmp_path / "bronze"
    code, err = run(["--catalog", catalog(tmp_path / "catalog.yaml", faker, rejected), "--bronze", str(bronze)], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        "error: source 'fake': the connector's check rejected the config: invalid api key **** for account 42"
    )
    assert "Traceback" not in err and "k-123456" not in err
    assert not bronze.exists(), "nothing written, no source synced, silver not started"


@pytest.mark.connector
@pytest.mark.usefixtures("fake_and_faker_cache", "prefect_server")
def test_a_source_whose_check_cannot_run_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {
        "name": "fake",
        "connector": FAKE,
        "config": {"records": 1, "check_crashes": "host db.internal unreachable"},
    }
    faker = {**FAKER_SOURCE, "streams": [{"name": "products"}]}
    bronze = tmp_path / "bronze"
    code, err = run(["--catalog", catalog(tmp_path / "catalog.yaml", broken, faker), "--bronze", str(bronze)], capsys)
    assert code == 1
    assert "fake could not be planned: 'check' failed (exit 1): host db.internal unreachable (transient_error)" in err
    assert list((bronze / "airbyte" / "faker" / "products" / "_manifests").glob("*.json")), "faker still handed off"
    assert not (bronze / "airbyte" / "fake").exists()
