"""Fault injection: the S3 server under a run stopped, restarted and frozen. Each test runs its own SeaweedFS
(``support.seaweed``), not the session's, and stops (SIGKILL) or freezes (SIGSTOP) its process while a real
``python -m flows.bronze`` is at a known stage (a request held by an S3 proxy in front of it). The run must fail
soon, with one-line errors naming the store; nothing half-written may be left; once the server is back, the
re-run must converge to exact silver tables with no orphaned part.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faults import FaultHarness, Lake, assert_converged, assert_nothing_left_behind, fake_source, wait_until
from support.s3_proxy import S3Proxy, S3Request
from support.seaweed import S3Endpoint, SeaweedS3Server

pytestmark = pytest.mark.faults

TIMEOUT = 3  # LAKE_S3_TIMEOUT_SECONDS for these runs
KEYS = {"items": set(range(50)), "others": set(range(50))}


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[tuple[SeaweedS3Server, S3Endpoint]]:
    server = SeaweedS3Server(tmp_path / "own-seaweed", buckets=("bronze", "silver"))
    with server as endpoint:
        yield server, endpoint
        server.stop()  # its data goes anyway: no need to wait for weed's own shutdown


@pytest.fixture
def own_proxy(own_s3: tuple[SeaweedS3Server, S3Endpoint]) -> Iterator[S3Proxy]:
    with S3Proxy(own_s3[1].url) as running:
        yield running


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_nothing_half_written(lake: Lake, source: str) -> None:
    """Every manifest's files are all there; no data file of a sync that has neither a manifest nor was rolled back
    is counted by silver (silver reads manifests only, checked by the re-run's exact tables)."""
    for stream in KEYS:
        raw = lake.data_files(source, stream)
        for sync_id, manifest in lake.manifests(source, stream).items():
            missing = {f["key"] for f in manifest["files"]} - raw
            assert not missing, f"{stream} manifest {sync_id} lists missing files {missing}"


def is_data_write(request: S3Request) -> bool:
    return request.method == "PUT" and request.key.endswith(".parquet") and "/_delta_log/" not in request.key


def test_s3_stopped_mid_sync_then_restarted(
    faults: FaultHarness, own_s3: tuple[SeaweedS3Server, S3Endpoint], own_proxy: S3Proxy
) -> None:
    """The server dies while the sync publishes its first part; a run started while it is down is refused in one
    line; after the restart the re-run converges."""
    server, endpoint = own_s3
    source = f"stopped_{uuid.uuid4().hex[:6]}"
    lake = faults.lake(source, endpoint)
    catalog = faults.catalog(fake_source(source))
    env = {**endpoint.env(), "AWS_ENDPOINT_URL": own_proxy.url, "LAKE_S3_TIMEOUT_SECONDS": str(TIMEOUT)}
    hold = own_proxy.hold(is_data_write)
    run = faults.start(lake, catalog, env=env)
    hold.wait(120, "(the first part upload)")
    server.stop()
    stopped = time.monotonic()
    hold.release()
    code = run.wait()
    took = time.monotonic() - stopped

    assert code == 1, run.tail()
    errors = error_lines(run.err)
    assert errors and all(lake.bronze_uri in e or lake.silver_uri in e for e in errors), run.tail()
    assert took < 60, f"the run took {took:.0f} s to fail after the S3 server stopped\n{run.tail()}"

    down = faults.run(lake, catalog, env=env)  # while the server is down: refused before anything starts
    assert down.proc.returncode == 1
    assert re.fullmatch(rf"error: cannot reach {lake.bronze_uri}: \w+", down.err.strip()), down.tail()

    server.restart()
    assert_nothing_half_written(lake, source)
    rerun = faults.run(lake, catalog, env=env)
    assert rerun.proc.returncode == 0, rerun.tail()
    assert_converged(lake, source, KEYS)
    assert_nothing_left_behind(faults, lake, source)


def is_second_manifest_write(request: S3Request) -> bool:
    return request.method == "PUT" and "/_manifests/" in request.key


def test_s3_frozen_while_handing_off(
    faults: FaultHarness, own_s3: tuple[SeaweedS3Server, S3Endpoint], own_proxy: S3Proxy
) -> None:
    """The server freezes (SIGSTOP) between two streams' manifests: every call fails after LAKE_S3_TIMEOUT_SECONDS
    instead of hanging; the run fails naming the store; once the server is thawed the re-run converges."""
    server, endpoint = own_s3
    source = f"frozen_{uuid.uuid4().hex[:6]}"
    lake = faults.lake(source, endpoint)
    catalog = faults.catalog(fake_source(source))
    env = {**endpoint.env(), "AWS_ENDPOINT_URL": own_proxy.url, "LAKE_S3_TIMEOUT_SECONDS": str(TIMEOUT)}
    hold = own_proxy.hold(is_second_manifest_write, skip=1)
    run = faults.start(lake, catalog, env=env)
    hold.wait(120, "(the second manifest write)")
    server.freeze()
    frozen = time.monotonic()
    hold.release()
    try:
        first = wait_until(lambda: "ReadTimeoutError" in run.err and time.monotonic(), "a call timed out", flow=run)
        code = run.wait(timeout=300)
        took = time.monotonic() - frozen
    finally:
        server.thaw()

    # The manifest write fails after the timeout plus the S3 client's backoff between its tries; the run then
    # ends once the tasks' own retries (5 s and 20 s later) failed the same way.
    assert first - frozen < TIMEOUT + 10, f"the first call failed {first - frozen:.0f} s after the freeze"
    assert code == 1, run.tail()
    errors = error_lines(run.err)
    assert errors and all(lake.bronze_uri in e or lake.silver_uri in e for e in errors), run.tail()
    assert took < 200, f"the run ended {took:.0f} s after the freeze"
    assert_nothing_half_written(lake, source)

    rerun = faults.run(lake, catalog, env=env)
    assert rerun.proc.returncode == 0, rerun.tail()
    assert_converged(lake, source, KEYS)
    assert_nothing_left_behind(faults, lake, source)
