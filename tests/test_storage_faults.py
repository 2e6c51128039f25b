"""Storage faults answered in time and in one line: a frozen S3 server fails a call within the configured timeout,
and a silver root that cannot be used stops a run before anything is synced."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.seaweed import S3Endpoint

from lakehouse_ingest.errors import ConfigError, StorageError
from lakehouse_ingest.lake.roots import open_storage


@pytest.fixture
def frozen_s3() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (a frozen S3 server)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_frozen_s3_server_fails_each_call_within_the_timeout(frozen_s3: str) -> None:
    env = {
        "AWS_ENDPOINT_URL": frozen_s3,
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "LAKE_S3_TIMEOUT_SECONDS": "3",
    }
    storage = open_storage("s3://bronze/x", env)
    for call in (lambda: storage.get_bytes("a.json"), lambda: storage.list("airbyte"), storage.check_reachable):
        started = time.monotonic()
        with pytest.raises(StorageError, match="s3://bronze/x"):
            call()
        assert time.monotonic() - started < 3 * 2  # the timeout, plus backoff between tries: never minutes
    storage.close()


def test_a_missing_silver_bucket_stops_the_run_before_any_sync(s3_env: S3Endpoint, tmp_path: Path) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable,
        "-m",
        "flows.bronze",
        "--bronze",
        f"s3://bronze/{prefix}",
        "--silver",
        "s3://no-such-silver",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: bucket 'no-such-silver' does not exist at {s3_env.url} (s3://no-such-silver)"
    ]
    listed = s3_env.boto3_client().list_objects_v2(Bucket="bronze", Prefix=prefix)
    assert listed.get("KeyCount", 0) == 0  # nothing synced, nothing written


def test_a_refused_key_is_bad_input(s3_env: S3Endpoint) -> None:
    env = {**s3_env.env(), "AWS_SECRET_ACCESS_KEY": "wrong"}
    with pytest.raises(ConfigError, match="the S3 key is refused for bucket 'bronze'"):
        open_storage("s3://bronze", env).check_reachable()
