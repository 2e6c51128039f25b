"""Session fixtures: an isolated Prefect home, one Prefect test harness, one real S3 server, the real connector.

Environment isolation happens at import time, before anything imports prefect, so no test reads or
writes the developer's ~/.prefect (results there would leak cached state between sessions).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="lakehouse-tests-"))
SESSION_DIR, SESSION_STARTED = _SESSION_DIR, time.time()
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SESSION_DIR / "prefect-results")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_TASKS_DISABLE_CACHING"] = "true"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
for _name in (
    "BRONZE_URI",
    "SILVER_URI",
    "CATALOG",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
):
    os.environ.pop(_name, None)

from support.faults import FaultHarness  # noqa: E402
from support.s3_proxy import S3Proxy  # noqa: E402
from support.seaweed import S3Endpoint, SeaweedS3Server  # noqa: E402

from lakehouse_ingest.lake.local import LocalStorage  # noqa: E402
from lakehouse_ingest.lake.roots import open_storage  # noqa: E402
from lakehouse_ingest.lake.s3 import S3Storage  # noqa: E402
from lakehouse_ingest.lake.storage import LakeStorage  # noqa: E402
from lakehouse_ingest.settings import IngestSettings  # noqa: E402

FAKER_SOURCE = {
    "name": "faker",
    "connector": {"package": "airbyte-source-faker", "version": "7.2.1"},
    "config": {"count": 30, "seed": 42, "records_per_slice": 10, "always_updated": False, "parallelism": 1},
}


@pytest.fixture(scope="session")
def connector_cache_dir() -> Path:
    """Where connectors are installed: the user's cache (installed once per machine, ~60 s)."""
    return IngestSettings().connector_cache_dir


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """Prefect's real test server, once per session (it costs ~6.5 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A real S3-compatible server (SeaweedFS) on loopback with buckets bronze, silver and airbyte-logs."""
    with SeaweedS3Server(tmp_path_factory.mktemp("seaweed"), buckets=("bronze", "silver", "airbyte-logs")) as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """The S3 server's endpoint and keys in the standard AWS variables, for this test only."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LakeStorage]:
    """The same test against a local directory and a fresh prefix on the real S3 server."""
    if request.param == "local":
        store: LakeStorage = LocalStorage(tmp_path / "lake")
    else:
        request.getfixturevalue("s3_env")
        store = open_storage(f"s3://bronze/test-{uuid.uuid4().hex}")
        assert isinstance(store, S3Storage)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def faults(tmp_path: Path, s3: S3Endpoint, prefect_server: None, connector_cache_dir: Path) -> Iterator[FaultHarness]:
    """The fault-injection suite's harness: real ``python -m flows.bronze`` subprocesses on the session's Prefect
    server and S3 server, each test with its own TMPDIR, connector cache, logs and lake prefixes."""
    from prefect.settings import get_current_settings

    from lakehouse_ingest.catalog.sources import ConnectorSpec
    from lakehouse_ingest.sources.embedded.connector import ConnectorInstaller

    spec = ConnectorSpec.model_validate(FAKER_SOURCE["connector"])
    faker_venv = ConnectorInstaller(connector_cache_dir, print).executable(spec).parent.parent  # installed once
    harness = FaultHarness(tmp_path, s3, str(get_current_settings().api.url), faker_venv)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def proxy(faults: FaultHarness) -> Iterator[S3Proxy]:
    """An S3 proxy in front of the session's S3 server that holds chosen requests (``support.s3_proxy``)."""
    with S3Proxy(faults.endpoint.url) as running:
        yield running
