"""Fault injection: damaged and foreign files in a stream's folder, with real ``python -m flows.bronze`` runs.

- Airbyte server: a truncated Parquet file inside a job's key window quarantines that stream's batch, naming the
  file; the job's other stream is handed off; the next run is not blocked by it. A zero-row Parquet file from
  another writer, another job's file and objects that are not data files are ignored, and left alone.
- Embedded: the manifest of a previous batch truncated: it is set aside (bytes kept) and the stream flows again;
  the set-aside batch's files are not mistaken for orphans.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.faults import FaultHarness, Platform, assert_converged, fake_platform, fake_source

from lakehouse_ingest.bronze.janitor import find_orphans
from lakehouse_ingest.lake.roots import open_storage

pytestmark = pytest.mark.faults


@pytest.fixture
def platform(faults: FaultHarness) -> Iterator[Platform]:
    with fake_platform(faults) as found:
        yield found


def parquet_bytes(rows: int, sync_id: int) -> bytes:
    """A Parquet file with Airbyte's columns, as another writer might drop one."""
    table = pa.table(
        {
            "_airbyte_raw_id": pa.array([str(uuid.uuid4()) for _ in range(rows)], pa.string()),
            "_airbyte_extracted_at": pa.array([datetime.now(UTC)] * rows, pa.timestamp("ms", tz="UTC")),
            "_airbyte_meta": pa.array(
                [{"sync_id": sync_id, "changes": []}] * rows,
                pa.struct([("sync_id", pa.int64()), ("changes", pa.list_(pa.struct([("field", pa.string())])))]),
            ),
            "_airbyte_generation_id": pa.array([0] * rows, pa.int64()),
            "id": pa.array(range(900_000, 900_000 + rows), pa.int64()),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def data_key(source: str, stream: str, epoch_ms: int, part: int) -> str:
    day = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return f"airbyte/{source}/{stream}/{day:%Y_%m_%d}_{epoch_ms}_{part}.parquet"


def test_damaged_and_foreign_files_in_a_jobs_window(platform: Platform) -> None:
    lake, source = platform.lake(), platform.source
    now = int(datetime.now(UTC).timestamp() * 1000)  # inside the next job's window (its start, less a skew margin)
    truncated = data_key(source, "users", now, 0)
    lake.write(truncated, parquet_bytes(5, sync_id=1)[:300])
    foreign = {
        data_key(source, "orders", now, 0): parquet_bytes(0, sync_id=1),  # zero rows, from another writer
        data_key(source, "orders", now - 1, 3): parquet_bytes(4, sync_id=999_999),  # another job's file
        f"airbyte/{source}/users/notes.txt": b"not data",
        f"airbyte/{source}/orders/sub/{data_key(source, 'x', now, 0).rsplit('/', 1)[1]}": parquet_bytes(2, 1),
        f"airbyte/{source}/orders/": b"",  # a folder marker
    }
    for key, body in foreign.items():
        lake.write(key, body)

    first = platform.start()
    assert first.wait() == 1, first.tail()
    (job,) = platform.jobs()
    errors = [line for line in first.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{source}.users" in errors[0] and truncated in errors[0], first.tail()
    mark = lake.document(f"airbyte/{source}/users/_quarantine/{job.id}.json")
    assert mark is not None and truncated in {f["key"] for f in mark["batch"]["files"]}
    assert not lake.manifests(source, "users")
    (orders,) = lake.manifests(source, "orders").values()
    assert {f["key"] for f in orders["files"]} == {data_key(source, "orders", int(job.started_at * 1000), 0)}

    second = platform.start()
    assert second.wait() == 0, second.tail()  # not blocked again by the file it quarantined
    quarantined = {f["key"] for f in mark["batch"]["files"]}
    platform_keys = platform.committed(without=[(job.id, "users")])
    assert_converged(lake, source, platform_keys, set_aside={"users": quarantined, "orders": set(foreign)})
    for key, body in foreign.items():
        assert lake.read(key) == body  # left alone
    ledger = platform.ledger()
    assert ledger is not None and ledger["watermark"] == platform.jobs()[-1].id and not ledger.get("in_flight")


def test_a_truncated_manifest_of_a_previous_batch_is_set_aside(faults: FaultHarness) -> None:
    source = f"damaged_{uuid.uuid4().hex[:6]}"
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source))
    assert faults.run(lake, catalog).proc.returncode == 0
    ((sync_id, manifest),) = lake.manifests(source, "items").items()
    key = f"airbyte/{source}/items/_manifests/{sync_id}.json"
    damaged = lake.read(key)[:40]
    lake.write(key, damaged)

    rerun = faults.run(lake, catalog)
    assert rerun.proc.returncode == 0, rerun.tail()
    assert lake.read(f"airbyte/{source}/items/_quarantine/{sync_id}.damaged-manifest") == damaged  # bytes kept
    assert sync_id not in lake.manifests(source, "items") and len(lake.manifests(source, "items")) == 1
    aside = {f["key"] for f in manifest["files"]}
    assert_converged(lake, source, {"items": set(range(50)), "others": set(range(50))}, set_aside={"items": aside})
    # the set-aside batch's files are not orphans: the next sync's janitor must keep them
    storage = open_storage(lake.bronze_uri, faults.endpoint.env())
    try:
        assert not {o.object.key for o in find_orphans(storage, source, datetime.now(UTC))} & aside
    finally:
        storage.close()
