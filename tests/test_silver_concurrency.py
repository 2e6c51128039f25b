"""Silver exactly once under any overlap: real processes applying the same and different batches at once.

Four worker processes (``spawn``: fresh interpreters, as separate runs of the flow would be) each apply every batch
of two streams, a keyed one (incremental merges, CDC deletes, full-refresh snapshots of two generations, late
batches) and one without a primary key (appends, snapshots), in their own random order, all starting together; a
lost commit race raises ``CommitConflict`` and is retried, as the Prefect task retries it. Once all are done, each
table must be what applying every batch once in sync order gives (the reference models of ``test_silver``), every
batch must be recorded, and the tombstones must hold no duplicate. On a table that does not exist yet (every
worker's first commit races to create it) and on one that does, on a local directory and on the S3 server.

``SILVER_RACE_ROUNDS`` (default 1) repeats each case with new batches; a failing round prints its seed.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import traceback
from collections import Counter
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from test_silver import Batch, Op, build_batches, expected, lake, silver_state, write

from lakehouse_ingest.bronze.manifest import load_manifest
from lakehouse_ingest.errors import CommitConflict
from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.lake.roots import opened_storage
from lakehouse_ingest.silver import merge as silver_merge
from lakehouse_ingest.silver.dedup import EXTRACTED
from lakehouse_ingest.silver.merge import apply_manifest
from lakehouse_ingest.silver.record import AppliedBatch
from lakehouse_ingest.silver.tables import SilverTables
from lakehouse_ingest.silver.tombstones import (
    CDC_DELETED,
    SYNC_COLUMN,
    TOMBSTONES_APP_ID,
    Tombstones,
    drop_tombstoned,
    read_tombstones,
    record_tombstones,
)

WORKERS = 4
ROUNDS = int(os.environ.get("SILVER_RACE_ROUNDS", "1"))
MAX_ATTEMPTS = 60  # the task retries twice; here four processes fight over one table for every batch
STREAMS = {"src": True, "logs": False}  # source -> keyed (stream "items" in both)
PRESET = 2  # batches of each stream applied before the workers start, for the "existing table" case


def random_plans(rng: random.Random) -> list[tuple[list[Op], str]]:
    """Six batches over few keys and cursors (so updates, deletes and late records collide): the first an
    incremental batch or a snapshot, then incremental batches and snapshots, some of the same generation."""
    kinds = [rng.choice(["incremental", "overwrite"])]
    kinds += [rng.choice(["incremental", "incremental", "overwrite", "overwrite-same-generation"]) for _ in range(5)]
    return [
        (
            [Op(rng.randint(0, 5), rng.randint(0, 4), rng.choice("abc"), rng.random() < 0.3, 0) for _ in range(6)],
            kind,
        )
        for kind in kinds
    ]


def worker(
    bronze_uri: str,
    silver_uri: str,
    jobs: list[tuple[str, int]],
    seed: int,
    barrier: Barrier,
    results: Any,
) -> None:
    """Apply every job (source, sync id) in order, retrying on CommitConflict; report the conflicts seen."""
    try:
        rng = random.Random(seed)
        conflicts = 0
        with opened_storage(bronze_uri) as bronze, opened_storage(silver_uri) as silver:
            tables = SilverTables(silver)
            manifests = {job: load_manifest(bronze, job[0], "items", job[1]) for job in jobs}
            barrier.wait(timeout=120)
            for job in jobs:
                for _ in range(MAX_ATTEMPTS):
                    try:
                        apply_manifest(bronze, tables, manifests[job])
                        break
                    except CommitConflict:
                        conflicts += 1
                        time.sleep(rng.uniform(0, 0.05))
                else:
                    raise AssertionError(f"{job}: still conflicting after {MAX_ATTEMPTS} attempts")
        results.put(("ok", conflicts))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def run_workers(bronze_uri: str, silver_uri: str, orders: list[list[tuple[str, int]]], rng: random.Random) -> int:
    """One worker per list of jobs, started together; the lost commit races they retried."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(orders))
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(bronze_uri, silver_uri, order, rng.randrange(1 << 30), barrier, results))
        for order in orders
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=900) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors, "\n".join(errors)
    return sum(int(detail) for _, detail in outcomes)


def shuffled(jobs: list[tuple[str, int]], rng: random.Random) -> list[tuple[str, int]]:
    order = list(jobs)
    rng.shuffle(order)
    return order


def check_round(kind: str, tmp_path: Path, existing: bool, seed: int) -> int:
    rng = random.Random(seed)
    batches = {source: build_batches(random_plans(rng)) for source in STREAMS}
    with lake(kind, tmp_path) as (bronze, tables):
        manifests = {
            (source, b.sync_id): write(bronze, source, b, keyed)
            for source, keyed in STREAMS.items()
            for b in batches[source]
        }
        if existing:  # the first batches of each stream applied one after the other: the table exists
            for source in STREAMS:
                for batch in batches[source][:PRESET]:
                    apply_manifest(bronze, tables, manifests[(source, batch.sync_id)])
        else:
            assert all(tables.open(tables.table_uri(source, "items")) is None for source in STREAMS)
        # each worker has every batch, in its own order; two of them start with the same one (for a new table:
        # both create the table with it), the other two with others
        orders = [shuffled(list(manifests), rng) for _ in range(WORKERS)]
        common = orders[0][0]
        orders[1].remove(common)
        orders[1].insert(0, common)
        conflicts = run_workers(bronze.uri, tables.silver.uri, orders, rng)

        for source, keyed in STREAMS.items():
            # every batch applied once, in effect in sync order: one row per key (silver_state checks it), newest
            # by cursor then extraction, deletes gone, rows of replaced generations gone; without a key every row
            # of the batches since the newest snapshot exactly once
            assert silver_state(tables, source, keyed) == expected(batches[source], keyed), (source, seed)
            ids = {b.sync_id for b in batches[source]}
            assert tables.applied_sync_ids(source, "items", candidates=ids | {999}) == ids, (source, seed)
            again = apply_manifest(bronze, tables, manifests[(source, batches[source][-1].sync_id)])
            assert not again.applied and again.skipped is None
        tombstones = tables.open(tables.tombstone_uri("src", "items"))
        if tombstones is not None:  # no tombstone recorded twice by two writers of the same batch
            recorded = tombstones.to_pyarrow_table(columns=["id", "updated_at", SYNC_COLUMN]).to_pylist()
            twice = [row for row, n in Counter(tuple(r.values()) for r in recorded).items() if n > 1]
            assert not twice, (twice, seed)
    return conflicts


@pytest.mark.parametrize("existing", [False, True], ids=["new-table", "existing-table"])
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_overlapping_writers_apply_every_batch_exactly_once(
    kind: str, existing: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "s3":
        request.getfixturevalue("s3_env")
    conflicts = 0
    for _ in range(ROUNDS):
        seed = random.randrange(1 << 30)
        try:
            conflicts += check_round(kind, tmp_path, existing, seed)
        except AssertionError as failed:
            raise AssertionError(f"seed {seed}: {failed}") from failed
    print(
        f"{kind}, {'existing' if existing else 'new'} table: {ROUNDS} round(s), {conflicts} lost commit race(s) retried"
    )


def test_two_processes_applying_the_same_first_batch_leave_it_once(tmp_path: Path) -> None:
    """The reported case: two processes apply a stream's first batch at once (its table does not exist yet)."""
    ops = tuple(Op(k, 1, "v", False, k + 1) for k in range(1000))
    for source, keyed in STREAMS.items():
        with lake("local", tmp_path) as (bronze, tables):
            write(bronze, source, Batch(1, 0, False, ops), keyed)
            run_workers(bronze.uri, tables.silver.uri, [[(source, 1)], [(source, 1)]], random.Random(0))
            rows = silver_state(tables, source, keyed)
            assert (len(rows) if keyed else sum(rows.values())) == 1000


# ---------------------------------------------------------------------------------------------------------------
# The same races, one step at a time in one process: what each loser sees, and what its retry does.


def test_a_creator_that_lost_the_race_conflicts_and_its_retry_finds_or_applies_its_batch(tmp_path: Path) -> None:
    for source, keyed in STREAMS.items():
        bronze, tables = (
            LocalStorage(tmp_path / source / "bronze"),
            SilverTables(LocalStorage(tmp_path / source / "silver")),
        )
        first = Batch(1, 0, False, (Op(1, 1, "a", False, 1), Op(2, 1, "b", False, 2)))
        second = Batch(2, 0, False, (Op(2, 2, "B", False, 3), Op(3, 1, "c", False, 4)))
        snapshot = Batch(3, 1, True, (Op(9, 1, "z", False, 5),))
        manifests = {b.sync_id: write(bronze, source, b, keyed) for b in (first, second, snapshot)}
        nothing = tables.record(source, "items")  # read before any table existed; then another writer created it
        assert nothing.table is None
        assert apply_manifest(bronze, tables, manifests[1]).applied
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(SilverTables, "record", lambda *args, _read=nothing: _read)
            for sync_id in (1, 2, 3):  # the same batch, another one, a snapshot: none lands on top blindly
                with pytest.raises(CommitConflict, match="another writer"):
                    apply_manifest(bronze, tables, manifests[sync_id])
        assert silver_state(tables, source, keyed) == expected([first], keyed)
        assert not apply_manifest(bronze, tables, manifests[1]).applied  # the retry finds it applied
        assert apply_manifest(bronze, tables, manifests[2]).applied  # or applies it on top
        assert silver_state(tables, source, keyed) == expected([first, second], keyed)
        assert apply_manifest(bronze, tables, manifests[3]).applied
        assert silver_state(tables, source, keyed) == expected([first, second, snapshot], keyed)
        assert DeltaTable(tables.table_uri(source, "items")).version() == 2  # one commit per batch, no stray create


def _deletes(rows: list[tuple[int, int, bool]]) -> pa.Table:
    """Deduplicated batch rows (key, cursor, delete) as the merge sees them."""
    stamp = pa.timestamp("us", "UTC")
    return pa.table(
        {
            "id": pa.array([r[0] for r in rows], pa.int64()),
            "updated_at": pa.array([r[1] for r in rows], pa.int64()),
            EXTRACTED: pa.array([1] * len(rows), pa.int64()).cast(stamp),
            CDC_DELETED: pa.array([1 if r[2] else None for r in rows], pa.int64()).cast(stamp),
        }
    )


def test_concurrent_tombstone_writers_conflict_instead_of_both_recording(tmp_path: Path) -> None:
    tables = SilverTables(LocalStorage(tmp_path / "silver"))
    commit = CommitProperties()
    for first_id in (1, 3):  # a tombstone table not there yet, then one that is
        one, two = read_tombstones(tables, "src", "items"), read_tombstones(tables, "src", "items")
        record_tombstones(
            tables, one, _deletes([(1, 5, True)]), ["id"], "updated_at", AppliedBatch(0, first_id), commit
        )
        with pytest.raises((CommitConflict, CommitFailedError)):
            record_tombstones(
                tables, two, _deletes([(1, 5, True)]), ["id"], "updated_at", AppliedBatch(0, first_id + 1), commit
            )
        # applied again (re-read), an already recorded batch records nothing more
        again = read_tombstones(tables, "src", "items")
        record_tombstones(
            tables, again, _deletes([(1, 5, True)]), ["id"], "updated_at", AppliedBatch(0, first_id), commit
        )
    recorded = DeltaTable(tables.tombstone_uri("src", "items")).to_pyarrow_table()
    assert sorted(recorded.column(SYNC_COLUMN).to_pylist()) == [1, 3]
    assert DeltaTable(tables.tombstone_uri("src", "items")).transaction_version(TOMBSTONES_APP_ID) == 3


def test_duplicate_tombstones_of_a_key_drop_its_rows_once_the_newest_winning(tmp_path: Path) -> None:
    dead = _deletes([(1, 5, True), (1, 9, True), (2, 1, True), (2, 1, True)]).drop_columns([CDC_DELETED])
    tombstones = Tombstones("unused", None, dead)
    latest = _deletes([(1, 7, False), (2, 3, False), (3, 1, False), (1, 6, True)])
    kept = drop_tombstoned(tombstones, latest, ["id"], "updated_at")
    # 1@7 is older than the newest tombstone (9): dropped; 2@3 is newer than 2's (1): kept, once; a delete is kept
    assert list(zip(kept.column("id").to_pylist(), kept.column("updated_at").to_pylist(), strict=True)) == [
        (2, 3),
        (3, 1),
        (1, 6),
    ]


def test_a_batch_applied_again_after_recording_its_tombstones_still_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost race (or a crash) after the tombstones and before the table commit: the batch's retry finds its own
    tombstones, which must not cancel its deletes."""
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    first = Batch(1, 0, False, (Op(1, 1, "a", False, 1), Op(2, 1, "b", False, 2)))
    second = Batch(2, 0, False, (Op(1, 5, "gone", True, 3),))
    apply_manifest(bronze, tables, write(bronze, "src", first))
    manifest = write(bronze, "src", second)
    with monkeypatch.context() as patch:
        patch.setattr(silver_merge, "_merge", lambda *args: (_ for _ in ()).throw(CommitConflict("lost")))
        with pytest.raises(CommitConflict):
            apply_manifest(bronze, tables, manifest)
    assert silver_state(tables, "src", True) == {1: "a", 2: "b"}
    assert apply_manifest(bronze, tables, manifest).applied
    assert silver_state(tables, "src", True) == expected([first, second], True) == {2: "b"}


def test_the_tombstones_of_a_batch_found_stale_do_not_act(tmp_path: Path) -> None:
    """A batch of an older generation records its deletes, then finds a newer snapshot committed meanwhile and is
    skipped: its deletes never happened, so a later batch's older record of that key must stay."""
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    stale = Batch(3, 1, False, (Op(1, 9, "deleted in generation 1", True, 1),))
    snapshot = Batch(4, 2, True, (Op(2, 1, "b", False, 2),))
    later = Batch(5, 2, False, (Op(1, 2, "back", False, 3),))
    stale_manifest = write(bronze, "src", stale)
    apply_manifest(bronze, tables, write(bronze, "src", snapshot))
    # what the stale batch did before its table commit lost to the snapshot's
    record_tombstones(
        tables,
        read_tombstones(tables, "src", "items"),
        _deletes([(1, 9, True)]),
        ["id"],
        "updated_at",
        AppliedBatch(1, 3),
        CommitProperties(),
    )
    assert apply_manifest(bronze, tables, stale_manifest).skipped is not None
    assert apply_manifest(bronze, tables, write(bronze, "src", later)).applied
    assert silver_state(tables, "src", True) == expected([stale, snapshot, later], True) == {1: "back", 2: "b"}
