"""Fault injection, embedded sources: ``python -m flows.bronze`` killed with ``kill -9`` at each stage, then run
again; the silver tables must end exact (one row per key, every key the connector emitted) with no orphaned part.

Stages are reached by watching real things, never by a hook in the product: the connector's ``read`` process
(reading), a first Parquet part in the lake while the connector is paused mid-read (reading), and requests held
by an S3 proxy in front of the lake (the first Parquet read: validating; the second manifest write: handing off;
a Delta log commit: merging).
"""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import FAKER_SOURCE
from support.faults import (
    SLOT_WAIT,
    FaultHarness,
    Lake,
    assert_converged,
    assert_nothing_left_behind,
    fake_source,
    faker_source,
    wait_until,
)
from support.s3_proxy import S3Proxy, S3Request

pytestmark = [pytest.mark.faults, pytest.mark.connector]

FAKE_KEYS = set(range(50))  # the fake connector's ids, per stream, for records=50
FAKER_KEYS = set(range(1, 31))  # what faker 7.2.1 emits for FAKER_SOURCE (count 30), per stream


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:6]}"


def via(proxy: S3Proxy) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": proxy.url}


def converges(faults: FaultHarness, lake: Lake, catalog: object, source: str, keys: dict[str, set[int]]) -> None:
    """The re-run succeeds and leaves the lake exact; the source's state names the re-run's sync."""
    rerun = faults.run(lake, catalog)  # type: ignore[arg-type]
    assert rerun.proc.returncode == 0, rerun.tail()
    assert_converged(lake, source, keys)
    state = lake.document(f"_state/airbyte/{source}/state.json")
    newest = max(max(lake.manifests(source, stream)) for stream in keys)
    assert state is not None and state["last_sync_id"] == newest
    assert_nothing_left_behind(faults, lake, source)
    assert lake.exists(f"_state/airbyte/{source}/syncs/{newest}.json")


def test_killed_while_faker_reads(faults: FaultHarness) -> None:
    """The real faker connector is reading (its ``read`` process runs): the flow is killed; its connector is left
    running, as after an OOM kill. The re-run reads everything again."""
    source = unique("faker")
    lake = faults.lake(source)
    catalog = faults.catalog(faker_source(source, FAKER_SOURCE))
    run = faults.start(lake, catalog)
    wait_until(lambda: any(" read " in cmd for _, cmd in run.group()), "faker's read is running", flow=run)
    run.kill9()
    run.reap()

    converges(faults, lake, catalog, source, dict.fromkeys(("users", "products", "purchases"), FAKER_KEYS))


def test_killed_mid_read_after_a_part_was_published(faults: FaultHarness) -> None:
    """The connector paused mid-read after the engine published the first parts of a stream: the killed sync's parts
    stay in bronze (no manifest), with its process record, its staging folder and its connector's config folder.
    ``--janitor --dry-run`` lists exactly those, ``--janitor`` removes them; the re-run lands everything once."""
    source = unique("midread")
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source, records=12_000, pause_after=11_000))
    run = faults.start(lake, catalog, env={"PART_MAX_ROWS": "4000"})
    wait_until(lambda: lake.data_files(source, "items"), "a first part of items is published", flow=run)
    wait_until(lambda: any(" read " in cmd for _, cmd in run.group()), "the connector reads", flow=run)
    run.kill9()
    run.reap()
    assert not lake.manifests(source, "items")
    parts = lake.data_files(source, "items") | lake.data_files(source, "others")
    (record,) = lake.objects(f"_state/airbyte/{source}/syncs/")
    (staging,) = faults.tmpdir.glob(f"lake-staging-{run.pid}~*")
    (config,) = (faults.tmpdir / f"airbyte-lakehouse-{os.getuid()}").glob(f"{run.pid}-*")

    listed = faults.run(lake, catalog, "--janitor", "--dry-run")
    assert listed.proc.returncode == 0, listed.tail()
    expected = [
        *(f"{source}: would remove orphaned part {lake.bronze_uri}/{key} (" for key in sorted(parts)),
        f"{source}: would remove sync record {lake.bronze_uri}/{record} (",
        f"would remove staging folder {staging} (process {run.pid} died while staging a part)",
        f"would remove connector config folder {config} (process {run.pid} died while its connector ran)",
    ]
    lines = listed.out.splitlines()
    assert len(lines) == len(expected) and all(line.startswith(e) for line, e in zip(lines, expected, strict=True)), (
        lines
    )
    assert lake.data_files(source, "items") | lake.data_files(source, "others") == parts and staging.exists()

    cleaned = faults.run(lake, catalog, "--janitor")
    assert cleaned.proc.returncode == 0, cleaned.tail()
    assert cleaned.out.splitlines() == [line.replace("would remove ", "removed ", 1) for line in lines]
    assert not lake.data_files(source, "items") and not lake.data_files(source, "others")
    assert not lake.objects(f"_state/airbyte/{source}/syncs/") and not staging.exists() and not config.exists()

    rerun_catalog = faults.catalog(fake_source(source, records=12_000))
    converges(faults, lake, rerun_catalog, source, {stream: set(range(12_000)) for stream in ("items", "others")})


def is_parquet_read(request: S3Request) -> bool:
    return request.method in {"GET", "HEAD"} and request.key.endswith(".parquet") and "/airbyte/" in f"/{request.key}"


def test_killed_while_validating(faults: FaultHarness, proxy: S3Proxy) -> None:
    """Every part is published; validation reads the first Parquet footer (held): killed."""
    source = unique("validating")
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source))
    hold = proxy.hold(is_parquet_read)
    run = faults.start(lake, catalog, env=via(proxy))
    hold.wait(120, "(validation reading a part)")
    run.kill9()
    hold.release()
    assert lake.data_files(source, "items") and not lake.manifests(source, "items")

    converges(faults, lake, catalog, source, {"items": FAKE_KEYS, "others": FAKE_KEYS})


def is_manifest_write(request: S3Request) -> bool:
    return request.method == "PUT" and "/_manifests/" in request.key


def test_killed_between_two_manifests(faults: FaultHarness, proxy: S3Proxy) -> None:
    """One stream's manifest is published, the next one's write is held: killed. The handed-off stream reaches
    silver once; the other stream's parts are orphans the re-run removes; its state was never committed."""
    source = unique("handoff")
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source))
    second = proxy.hold(is_manifest_write, skip=1)  # the first manifest goes through
    run = faults.start(lake, catalog, env=via(proxy))
    second.wait(120, "(the second manifest write)")
    run.kill9()
    second.release()
    handed = [s for s in ("items", "others") if lake.manifests(source, s)]
    assert len(handed) == 1, handed
    assert lake.document(f"_state/airbyte/{source}/state.json") is None

    converges(faults, lake, catalog, source, {"items": FAKE_KEYS, "others": FAKE_KEYS})


def is_delta_commit(request: S3Request) -> bool:
    return request.method == "PUT" and "/_delta_log/" in request.key and request.key.endswith(".json")


def test_killed_while_merging_into_silver(faults: FaultHarness, proxy: S3Proxy) -> None:
    """Bronze is done (manifests, state); silver's first Delta commit is held: killed. The killed run's silver slot
    stays taken (the test server runs no services to free it): the re-run waits ``SILVER_SLOT_WAIT_SECONDS``, says
    so, and merges what is pending, once."""
    source = unique("merging")
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source))
    hold = proxy.hold(is_delta_commit)
    run = faults.start(lake, catalog, env=via(proxy))
    hold.wait(120, "(a silver commit)")
    run.kill9()
    hold.release()
    assert lake.manifests(source, "items") and lake.manifests(source, "others")

    converges(faults, lake, catalog, source, {"items": FAKE_KEYS, "others": FAKE_KEYS})
    assert f"silver slot(s) silver-source:{source} still taken after {SLOT_WAIT} s" in faults.runs[-1].err
