"""A process that touched S3 through pyarrow exits 0, never 134.

pyarrow's S3 subsystem can abort (SIGABRT, exit 134) at interpreter teardown when S3 clients or
filesystems are still alive (apache/arrow#41087; seen about once in 40 runs). The CLI avoids it by
closing the storage and calling ``finalize_s3()`` before exit; this runs that exact ending many times.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from support.seaweed import S3Endpoint

ROOT = Path(__file__).resolve().parents[1]
RUNS = 25
TIMEOUT_SECONDS = 60

SCRIPT = """
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_ingest.lake.roots import open_storage
from lakehouse_ingest.lake.s3 import finalize_s3

storage = open_storage(f"s3://bronze/exit-{sys.argv[1]}")
key = "airbyte/exit/rows/2024_05_17_1715934612345_0.parquet"
table = pa.table({"id": list(range(1000)), "name": [f"name-{i}" for i in range(1000)]})
with tempfile.TemporaryDirectory() as tmp:
    local = Path(tmp) / "part.parquet"
    pq.write_table(table, local)
    size = storage.publish_file(local, key)
read = storage.open_parquet(key).read()  # pyarrow's S3FileSystem and its thread pools
assert read.equals(table), "read back differs"
listed = storage.list("airbyte/exit")
assert [(o.key, o.size) for o in listed] == [(key, size)], listed
print(f"ok rows={read.num_rows} listed={len(listed)} bytes={size}")
# Exactly how the CLI ends (tasks close their storage; flows/bronze.py's __main__ finalizes).
storage.close()
finalize_s3()
sys.exit(0)
"""


def test_s3_process_exits_cleanly_every_time(s3: S3Endpoint) -> None:
    env = {**os.environ, **s3.env(), "PYTHONPATH": str(ROOT)}
    token = uuid.uuid4().hex[:8]
    started = time.monotonic()
    outcomes: list[tuple[int, str, str]] = []
    for run in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, f"{run}-{token}"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        outcomes.append((done.returncode, done.stdout, done.stderr))
    elapsed = time.monotonic() - started
    print(f"{RUNS} S3 processes in {elapsed:.1f} s ({elapsed / RUNS:.2f} s each)")

    failures = [(n, code, err[-2000:]) for n, (code, _, err) in enumerate(outcomes) if code != 0]
    assert not failures, f"{len(failures)}/{RUNS} runs did not exit 0: {failures}"
    for _, out, _ in outcomes:
        assert out.startswith("ok rows=1000 listed=1 bytes="), out
