"""Benchmark: reconciling a stream batch of 1,000 Parquet files on S3 from their footers alone.

Starts a SeaweedFS S3 server on loopback (as the tests do), writes 1,000 small Parquet files in Airbyte's
destination format under one stream prefix (``airbyte/bench/users/``), then times, through our real code
path (``S3Storage`` and ``checks.reconcile``): listing the prefix (``files_listed``), opening every file's
footer (``readable_parquet``, concurrently) and summing the rows from the footers (``row_count``). No column
is read. Each round uses a fresh storage (new S3 connections). Target: <= 2 s for 1,000 files.

    python bench/reconciliation.py [--files 1000] [--rounds 3] [--threads 32]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from support.seaweed import S3Endpoint, SeaweedS3Server  # noqa: E402

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_META  # noqa: E402
from lakehouse_ingest.bronze.batch import StreamBatch  # noqa: E402
from lakehouse_ingest.bronze.checks import validate as checks  # noqa: E402
from lakehouse_ingest.bronze.parts import PublishedPart  # noqa: E402
from lakehouse_ingest.lake.keys import data_key, stream_prefix  # noqa: E402
from lakehouse_ingest.lake.roots import open_storage  # noqa: E402
from lakehouse_ingest.lake.s3 import finalize_s3  # noqa: E402

SYNC_ID = 1_700_000_000_000
STARTED = datetime.fromtimestamp(SYNC_ID / 1000, UTC)


def part(rows: int, first_id: int) -> bytes:
    """One small part in Airbyte's destination format (destination-s3 >= 1.0 columns plus a few of the stream)."""
    ids = list(range(first_id, first_id + rows))
    no_changes = pa.ListArray.from_arrays(
        pa.array([0] * (rows + 1), pa.int32()), pa.array([], AIRBYTE_META.field("changes").type.value_type)
    )
    sync_ids = pa.array([SYNC_ID] * rows, pa.int64())
    table = pa.table(
        {
            "_airbyte_raw_id": pa.array([f"00000000-0000-4000-8000-{i:012d}" for i in ids]),
            "_airbyte_extracted_at": pa.array([SYNC_ID] * rows, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "_airbyte_meta": pa.StructArray.from_arrays([sync_ids, no_changes], fields=list(AIRBYTE_META)),
            "_airbyte_generation_id": pa.array([0] * rows, pa.int64()),
            "id": pa.array(ids, pa.int64()),
            "email": pa.array([f"user{i}@example.com" for i in ids]),
            "updated_at": pa.array([SYNC_ID * 1000] * rows, pa.int64()).cast(pa.timestamp("us", "UTC")),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def upload(endpoint: S3Endpoint, prefix: str, count: int) -> list[PublishedPart]:
    """``count`` parts of 50..149 rows each under the stream prefix, uploaded concurrently (not timed)."""
    client = endpoint.boto3_client()

    def one(number: int) -> PublishedPart:
        rows = 50 + number % 100
        body = part(rows, number * 1000)
        key = data_key("bench", "users", STARTED, number)
        client.put_object(Bucket="bronze", Key=f"{prefix}/{key}", Body=body)
        return PublishedPart(key, rows, len(body))

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=checks.FOOTER_THREADS, help="footers fetched at once")
    args = parser.parse_args()
    checks.FOOTER_THREADS = args.threads
    with tempfile.TemporaryDirectory() as tmp, SeaweedS3Server(Path(tmp), buckets=("bronze",)) as endpoint:
        os.environ.update(endpoint.env())
        started = time.perf_counter()
        files = upload(endpoint, "bench", args.files)
        rows = sum(f.rows for f in files)
        print(
            f"uploaded {len(files):,} files ({rows:,} rows, {sum(f.bytes for f in files) / 1e6:.1f} MB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        batch = StreamBatch(
            "bench", "users", None, SYNC_ID, 0, STARTED, stream_prefix("bench", "users"), "incremental",
            "append", [["id"]], ["updated_at"], pa.schema([]), records=rows, files=files,
        )  # fmt: skip
        seconds = []
        for round_ in range(1, args.rounds + 1):
            storage = open_storage("s3://bronze/bench")
            began = time.perf_counter()
            results = checks.reconcile(storage, batch)
            elapsed = time.perf_counter() - began
            storage.close()
            assert [c.passed for c in results] == [True, True, True], results
            seconds.append(elapsed)
            print(
                f"round {round_}: {elapsed:.2f} s for {len(files):,} files, {args.threads} footer threads "
                f"({'; '.join(c.detail for c in results)}) (target <= 2 s)"
            )
        if len(seconds) > 1:
            print(f"best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s")
    finalize_s3()


if __name__ == "__main__":
    main()
