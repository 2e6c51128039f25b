"""Installing a connector from a package index that says no, or does not answer: one line, the right exit code,
pip's output in the log the line names, nothing left in the connector cache.

pip runs for real (a fresh virtualenv, ``pip install``) against a PEP 503 index served by this test on loopback,
so what is asserted is pip's own output as the installer classifies it; no request leaves the machine.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.cli import bronze_main
from lakehouse_ingest.catalog.sources import ConnectorSpec
from lakehouse_ingest.errors import ConfigError, ConnectorInstallError
from lakehouse_ingest.sources.embedded.install import install_failure, newest

VERSIONS = ["6.9.3", "7.0.0", "7.1.0", "7.2.0", "7.2.1", "7.3.0rc1"]


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A package index knowing airbyte-source-faker (VERSIONS), failing for airbyte-source-flaky (503)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/simple/airbyte-source-faker":
                wheels = [f"airbyte_source_faker-{v}-py3-none-any.whl" for v in VERSIONS]
                links = "".join(f'<a href="/files/{wheel}">{wheel}</a>\n' for wheel in wheels)
                self._answer(200, f"<html><body>\n{links}</body></html>")
            elif self.path.rstrip("/") == "/simple/airbyte-source-flaky":
                self._answer(503, "upstream unavailable")
            else:
                self._answer(404, "not found")

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    for name, value in {
        "PIP_CONFIG_FILE": "/dev/null",  # this machine's pip.conf adds indexes and constraints: only ours here
        "PIP_INDEX_URL": url,
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "5",
        "CONNECTOR_CACHE_DIR": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path / "tmp"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def run(tmp_path: Path, connector: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    source = {"name": "faker", "connector": connector, "config": {"count": 1}}
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump({"sources": [source]}))
    lake = ["--bronze", str(tmp_path / "bronze"), "--silver", str(tmp_path / "silver")]
    code = bronze_main(["--catalog", str(tmp_path / "catalog.yaml"), *lake])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, lines[-1]


def cache_entries(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir() if p.name != ".locks") if cache.exists() else []


def logged(line: str) -> str:
    return Path(line.rsplit("(log: ", 1)[1].rstrip(")")).read_text()


def test_a_version_that_does_not_exist_names_the_newest_ones(
    tmp_path: Path, index: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run(tmp_path, {"package": "airbyte-source-faker", "version": "9.9"}, capsys)
    assert code == 2
    assert line.startswith(
        "error: no version 9.9 of airbyte-source-faker; newest: 7.2.1, 7.2.0, 7.1.0, 7.0.0, 6.9.3 (log: "
    )
    assert "airbyte-source-faker==9.9" in logged(line), "pip's full output is in the log"
    assert cache_entries(tmp_path) == [], "no half-built virtualenv, no log in the cache"
    assert not (tmp_path / "bronze").exists()


def test_a_package_that_does_not_exist_is_bad_input(
    tmp_path: Path, index: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run(tmp_path, {"package": "airbyte-source-nope", "version": "1.0.0"}, capsys)
    assert code == 2 and line.startswith("error: no package airbyte-source-nope on the package index (log: ")
    assert cache_entries(tmp_path) == []


def test_an_index_failing_is_retryable_not_bad_input(
    tmp_path: Path, index: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run(tmp_path, {"package": "airbyte-source-flaky", "version": "1.0.0"}, capsys)
    assert code == 1
    assert line.startswith("error: could not install airbyte-source-flaky==1.0.0: the package index did not answer (")
    assert "503" in logged(line)
    assert cache_entries(tmp_path) == []


def test_an_unreachable_index_is_retryable(
    tmp_path: Path, index: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")  # nothing listens on port 9
    code, line = run(tmp_path, {"package": "airbyte-source-faker", "version": "7.2.1"}, capsys)
    assert code == 1 and "the package index did not answer" in line and "try again later" in line
    assert cache_entries(tmp_path) == []


def test_pip_output_is_classified_by_what_pip_says() -> None:
    spec = ConnectorSpec(package="airbyte-source-x", version="9.9")
    log = Path("/tmp/x.log")
    missing = (
        "ERROR: Could not find a version that satisfies the requirement airbyte-source-x==9.9 "
        "(from versions: 1.0, 2.0.dev1, 1.5)"
    )
    error = install_failure(spec, missing, 1, log)
    assert isinstance(error, ConfigError) and str(error) == (
        "no version 9.9 of airbyte-source-x; newest: 1.5, 1.0, 2.0.dev1 (log: /tmp/x.log)"
    )
    dropped = "WARNING: Retrying (Retry(total=4 ...)) after connection broken by 'ProxyError(...)'\n" + missing
    assert isinstance(install_failure(spec, dropped, 1, log), ConnectorInstallError)
    build = "error: subprocess-exited-with-error\nERROR: Failed building wheel for pyodbc"
    failed = install_failure(spec, build, 1, log)
    assert isinstance(failed, ConnectorInstallError) and "Failed building wheel for pyodbc" in str(failed)
    assert newest(["0.9", "v1.2.0", "latest", "1.10.0", "1.3.0-rc1"], 3) == ["1.10.0", "v1.2.0", "0.9"]
    not_found = "Could not fetch URL https://pypi.org/simple/airbyte-source-x/: 404 Client Error: Not Found for url"
    assert isinstance(install_failure(spec, not_found + "\n" + missing, 1, log), ConfigError)


@pytest.mark.connector
def test_a_version_missing_on_the_real_package_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same line from the machine's own pip configuration and index (PyPI)."""
    monkeypatch.setenv("CONNECTOR_CACHE_DIR", str(tmp_path / "cache"))
    code, line = run(tmp_path, {"package": "airbyte-source-faker", "version": "99.0.0"}, capsys)
    assert code == 2, line
    assert line.startswith("error: no version 99.0.0 of airbyte-source-faker; newest: ")
    newest_listed = line.split("newest: ", 1)[1].split(" (log: ")[0].split(", ")
    assert len(newest_listed) == 5 and all(re.fullmatch(r"\d+(\.\d+)+", v) for v in newest_listed), newest_listed
    assert cache_entries(tmp_path) == []
