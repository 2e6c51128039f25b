"""Connector config files (which hold secrets) never outlive the connector run: removed on success, on a failed
or killed connector, on an exception; a crashed process's leftovers are removed by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lakehouse_ingest.errors import ConnectorError
from lakehouse_ingest.sources.embedded.connector import Connector, private_root

FAKE_CONNECTOR = Path(__file__).parent / "support" / "fake_connector.py"
SECRET = "s3cr3t-5f0e9b"


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory of the test's own, so only this test's files are looked at."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    return tmp_path / "tmp"


@pytest.fixture
def connector(tmp_path: Path) -> Connector:
    exe = tmp_path / "bin" / "source-fake"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CONNECTOR}" "$@"\n')
    exe.chmod(0o755)
    return Connector(exe, "fake")


def files_holding_the_secret(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]


def catalog() -> dict[str, object]:
    stream = {"name": "items", "json_schema": {}, "supported_sync_modes": ["full_refresh"]}
    return {"streams": [{"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "append"}]}


def test_removed_after_a_read_that_succeeds_and_one_whose_connector_fails(
    private_tmp: Path, connector: Connector
) -> None:
    with connector.read({"records": 3, "api_key": SECRET}, catalog(), None) as process:
        assert files_holding_the_secret(private_tmp)  # the connector reads it while it runs
        lines = [line for chunk in process.chunks() for line in chunk]
        assert process.wait() == 0 and len(lines) >= 3
    assert files_holding_the_secret(private_tmp) == []
    with connector.read({"records": 3, "api_key": SECRET, "exit_code": 9}, catalog(), None) as process:
        list(process.chunks())
        assert process.wait() == 9
    assert files_holding_the_secret(private_tmp) == []
    with pytest.raises(ConnectorError):
        connector.check({"records": 1, "api_key": SECRET, "check_fails": "no"})
    assert files_holding_the_secret(private_tmp) == []


def test_removed_when_the_run_fails_mid_read_and_the_connector_is_killed(
    private_tmp: Path, connector: Connector
) -> None:
    def sink_fails_mid_read() -> None:
        with connector.read({"records": 100_000, "api_key": SECRET}, catalog(), None) as process:
            next(iter(process.chunks()))
            raise RuntimeError("the sink failed")  # the connector is still writing: it is killed

    with pytest.raises(RuntimeError):
        sink_fails_mid_read()
    assert files_holding_the_secret(private_tmp) == []


def test_a_crashed_processs_leftovers_are_removed_by_the_next_run(private_tmp: Path, connector: Connector) -> None:
    crash = (
        "import os, sys; sys.path[:0] = sys.argv[1:2]; "
        "from lakehouse_ingest.sources.embedded.connector import _private_files; "
        f"cm = _private_files(config={{'api_key': {SECRET!r}}}); cm.__enter__(); os._exit(137)"
    )
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    subprocess.run([sys.executable, "-c", crash, str(Path(__file__).parent.parent)], env=env, check=False)
    leftovers = files_holding_the_secret(private_tmp)
    assert leftovers and all(p.stat().st_mode & 0o077 == 0 for p in leftovers)  # owner-only meanwhile
    assert (private_root().stat().st_mode & 0o777) == 0o700
    connector.spec()  # the next connector call of any run
    assert files_holding_the_secret(private_tmp) == []
