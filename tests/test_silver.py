"""Silver merge: property-based against a reference model, exactly once, crash safety, schema evolution,
full-refresh overwrite (snapshots, generations, late batches), on a local directory and on the S3 server."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lakehouse_ingest.bronze.arrow_types import stream_columns
from lakehouse_ingest.bronze.manifest import load_manifest
from lakehouse_ingest.errors import CommitConflict, is_transient
from lakehouse_ingest.lake.documents import Manifest, ManifestFile, write_document
from lakehouse_ingest.lake.keys import manifest_key, stream_prefix
from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.lake.roots import open_storage
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.silver import merge as silver_merge
from lakehouse_ingest.silver import record as silver_record
from lakehouse_ingest.silver.dedup import latest_per_key
from lakehouse_ingest.silver.merge import apply_manifest
from lakehouse_ingest.silver.tables import SilverTables
from lakehouse_ingest.sources.embedded.records import RecordConverter

SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "value": {"type": "string"},
        "updated_at": {"type": "integer"},
        "_ab_cdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
    }
}


@dataclass(frozen=True)
class Op:
    """One source record: key, cursor, value, whether it is a CDC delete; ``order`` makes extraction unique."""

    key: int
    cursor: int
    value: str
    delete: bool
    order: int


def write_batch(
    bronze: LakeStorage,
    source: str,
    sync_id: int,
    ops: list[Op],
    schema: dict[str, Any] = SCHEMA,
    primary_key: list[list[str]] | None = None,
    generation: int = 0,
    mode: str = "append",
) -> Manifest:
    """Bronze Parquet for ``ops`` in Airbyte's layout, and the manifest that hands it off (no file when empty)."""
    lines = [
        json.dumps(
            {
                "type": "RECORD",
                "record": {
                    "stream": "items",
                    "emitted_at": 1_700_000_000_000 + op.order,
                    "data": {
                        "id": op.key,
                        "value": op.value,
                        "updated_at": op.cursor,
                        "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z" if op.delete else None,
                        **({"extra": "x"} if "extra" in schema["properties"] else {}),
                    },
                },
            }
        ).encode()
        for op in ops
    ]
    table = RecordConverter("items", stream_columns(schema), sync_id, generation).convert(lines)
    key = f"airbyte/{source}/items/2024_01_01_{sync_id}_0.parquet"
    buffer = io.BytesIO()
    if ops:
        pq.write_table(table, buffer)
        bronze.put_bytes(key, buffer.getvalue())
    manifest = Manifest(
        source=source,
        stream="items",
        sync_id=sync_id,
        generation_id=generation,
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        prefix=stream_prefix(source, "items"),
        sync_mode="full_refresh" if mode == "overwrite" else "incremental",
        destination_sync_mode=mode,
        primary_key=[["id"]] if primary_key is None else primary_key,
        cursor_field=["updated_at"],
        validated_at=datetime(2024, 1, 1, tzinfo=UTC),
        bronze_root=bronze.uri,
        rows=table.num_rows,
        bytes=len(buffer.getvalue()),
        files=[ManifestFile(key=key, rows=table.num_rows, bytes=len(buffer.getvalue()), url=bronze.url_for(key))]
        if ops
        else [],
    )
    write_document(bronze, manifest_key(source, "items", sync_id), manifest)
    return manifest


def model(batches: list[list[Op]]) -> dict[int, str]:
    """The reference: per key, the newest record (cursor, then extraction order) wins; a delete removes it."""
    winners: dict[int, Op] = {}
    for op in (op for batch in batches for op in batch):
        current = winners.get(op.key)
        if current is None or (op.cursor, op.order) > (current.cursor, current.order):
            winners[op.key] = op
    return {key: op.value for key, op in winners.items() if not op.delete}


def _id_value_rows(tables: SilverTables, source: str) -> list[dict[str, Any]]:
    table = tables.open(tables.table_uri(source, "items"))
    if table is None:
        return []
    data = table.to_pyarrow_table()
    if "id" not in data.column_names:  # created by an empty batch: the Airbyte columns only
        assert data.num_rows == 0
        return []
    return data.select(["id", "value"]).to_pylist()


def silver_rows(tables: SilverTables, source: str) -> dict[int, str]:
    rows = _id_value_rows(tables, source)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "one row per primary key"
    return {r["id"]: r["value"] for r in rows}


ops = st.builds(
    Op,
    key=st.integers(0, 4),
    cursor=st.integers(0, 6),
    value=st.text("abc", min_size=1, max_size=3),
    delete=st.booleans(),
    order=st.just(0),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(ops, min_size=1, max_size=6), min_size=1, max_size=5),
    arrival=st.randoms(use_true_random=False),
    replay=st.integers(0, 10),
)
def test_silver_equals_the_reference_model_in_any_arrival_order(
    tmp_path: Path, batches: list[list[Op]], arrival: Any, replay: int
) -> None:
    counter = iter(range(1, 10_000))
    batches = [[Op(o.key, o.cursor, o.value, o.delete, next(counter)) for o in batch] for batch in batches]
    root = tmp_path / uuid.uuid4().hex
    bronze, tables = LocalStorage(root / "bronze"), SilverTables(LocalStorage(root / "silver"))
    manifests = [write_batch(bronze, "src", sync_id, batch) for sync_id, batch in enumerate(batches, start=1)]
    order = list(manifests)
    arrival.shuffle(order)
    for manifest in order:
        assert apply_manifest(bronze, tables, manifest).applied
    assert silver_rows(tables, "src") == model(batches)

    version = tables.open(tables.table_uri("src", "items")).version()  # type: ignore[union-attr]
    again = apply_manifest(bronze, tables, manifests[replay % len(manifests)])
    assert not again.applied
    assert tables.open(tables.table_uri("src", "items")).version() == version  # type: ignore[union-attr]
    assert silver_rows(tables, "src") == model(batches)


def test_latest_per_key_keeps_the_newest_duplicate() -> None:
    table = pa.table(
        {
            "id": [1, 1, 2, 1],
            "updated_at": [5, 7, 1, 7],
            "_airbyte_extracted_at": [1, 2, 3, 9],
            "v": ["old", "mid", "b", "new"],
        }
    )
    assert sorted(latest_per_key(table, ["id"], "updated_at").to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "updated_at": 7, "_airbyte_extracted_at": 9, "v": "new"},
        {"id": 2, "updated_at": 1, "_airbyte_extracted_at": 3, "v": "b"},
    ]


def test_commits_record_the_sync_id_and_keep_lineage(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    apply_manifest(bronze, tables, write_batch(bronze, "src", 11, [Op(1, 1, "a", False, 1)]))
    result = apply_manifest(bronze, tables, write_batch(bronze, "src", 12, [Op(1, 2, "b", False, 2)]))
    assert (result.applied, result.updated, result.inserted) == (True, 1, 0)
    table = DeltaTable(tables.table_uri("src", "items"))
    assert [h.get("lakehouse.sync_id") for h in table.history()][:2] == ["12", "11"]
    (row,) = table.to_pyarrow_table().to_pylist()
    assert row["_airbyte_meta"]["sync_id"] == 12 and row["value"] == "b"
    assert tables.applied_sync_ids("src", "items") == {11, 12}


def test_streams_without_primary_key_are_appended_once(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    manifest = write_batch(bronze, "logs", 1, [Op(1, 1, "a", False, 1), Op(1, 1, "a", False, 2)], primary_key=[])
    apply_manifest(bronze, tables, manifest)
    apply_manifest(bronze, tables, manifest)
    assert DeltaTable(tables.table_uri("logs", "items")).to_pyarrow_table().num_rows == 2


def test_new_columns_evolve_the_schema(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    apply_manifest(bronze, tables, write_batch(bronze, "src", 1, [Op(1, 1, "a", False, 1)]))
    wider = {"properties": {**SCHEMA["properties"], "extra": {"type": "string"}}}
    apply_manifest(bronze, tables, write_batch(bronze, "src", 2, [Op(2, 1, "b", False, 2)], schema=wider))
    rows = DeltaTable(tables.table_uri("src", "items")).to_pyarrow_table(columns=["id", "extra"]).to_pylist()
    assert sorted(rows, key=lambda r: r["id"]) == [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]


def test_a_crash_before_the_commit_leaves_the_previous_version_and_a_rerun_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    apply_manifest(bronze, tables, write_batch(bronze, "src", 1, [Op(1, 1, "a", False, 1)]))
    second = write_batch(bronze, "src", 2, [Op(1, 2, "b", False, 2), Op(2, 1, "c", False, 3)])

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between writing data and committing")

    with monkeypatch.context() as patch:
        patch.setattr(silver_merge, "_merge", crash)  # data files may exist; no commit happens
        with pytest.raises(RuntimeError):
            apply_manifest(bronze, tables, second)
    assert silver_rows(tables, "src") == {1: "a"}
    assert apply_manifest(bronze, tables, second).applied
    assert silver_rows(tables, "src") == {1: "b", 2: "c"}


def test_a_manifest_disagreeing_with_its_files_is_refused(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    manifest = write_batch(bronze, "src", 1, [Op(1, 1, "a", False, 1)])
    manifest.files[0].rows = 5
    with pytest.raises(Exception, match="holds 1 rows, its manifest says 5"):
        apply_manifest(bronze, tables, manifest)
    assert tables.open(tables.table_uri("src", "items")) is None


# ---------------------------------------------------------------------------------------------------------------
# Full refresh (overwrite): snapshots, generations, batches arriving late, on local storage and on S3.


@dataclass(frozen=True)
class Batch:
    """One synced batch: its sync id, generation, whether it is a full-refresh snapshot, its records."""

    sync_id: int
    generation: int
    overwrite: bool
    ops: tuple[Op, ...]


def expected(received: list[Batch], keyed: bool) -> Any:
    """The reference for overwrite: order by (generation, sync id), start at the newest snapshot, merge from there
    (newest record per key wins, deletes remove) or, without a primary key, keep every row."""
    ordered = sorted(received, key=lambda b: (b.generation, b.sync_id))
    start = max((i for i, b in enumerate(ordered) if b.overwrite), default=0)
    live = [list(b.ops) for b in ordered[start:]]
    if keyed:
        return model(live)
    return Counter((op.key, op.value) for ops in live for op in ops)


def is_stale(batch: Batch, received: list[Batch]) -> bool:
    """A batch older than a snapshot already received is skipped."""
    return any(b.overwrite and (b.generation, b.sync_id) > (batch.generation, batch.sync_id) for b in received)


def silver_state(tables: SilverTables, source: str, keyed: bool) -> Any:
    if keyed:
        return silver_rows(tables, source)
    return Counter((r["id"], r["value"]) for r in _id_value_rows(tables, source))


def write(bronze: LakeStorage, source: str, batch: Batch, keyed: bool = True) -> Manifest:
    return write_batch(
        bronze,
        source,
        batch.sync_id,
        list(batch.ops),
        primary_key=None if keyed else [],
        generation=batch.generation,
        mode="overwrite" if batch.overwrite else "append",
    )


@contextlib.contextmanager
def lake(kind: str, tmp_path: Path) -> Iterator[tuple[LakeStorage, SilverTables]]:
    """Fresh bronze and silver roots: local directories, or prefixes in the S3 server's buckets."""
    if kind == "local":
        root = tmp_path / uuid.uuid4().hex
        yield LocalStorage(root / "bronze"), SilverTables(LocalStorage(root / "silver"))
        return
    name = uuid.uuid4().hex
    bronze, silver = open_storage(f"s3://bronze/test-{name}"), open_storage(f"s3://silver/test-{name}")
    try:
        yield bronze, SilverTables(silver)
    finally:
        bronze.close()
        silver.close()


@pytest.fixture(params=["local", "s3"])
def lake_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_env")
    return str(request.param)


dense_ops = st.builds(  # few keys and cursors: overwrites, deletes and late records collide often
    Op,
    key=st.integers(0, 2),
    cursor=st.integers(0, 4),
    value=st.text("abc", min_size=1, max_size=2),
    delete=st.booleans(),
    order=st.just(0),
)
batch_plans = st.lists(
    st.tuples(
        st.lists(dense_ops, min_size=0, max_size=5),
        # a full refresh starts a new generation; "same" is one whose predecessor was quarantined (embedded
        # engine: the generation only advances once a batch is handed off), so it reuses the generation
        st.sampled_from(["incremental", "incremental", "overwrite", "overwrite-same-generation"]),
    ),
    min_size=1,
    max_size=6,
)


def build_batches(plans: list[tuple[list[Op], str]]) -> list[Batch]:
    counter, generation, batches = iter(range(1, 10_000)), 0, []
    for sync_id, (records, kind) in enumerate(plans, start=1):
        generation += kind == "overwrite"
        ops_ = tuple(Op(o.key, o.cursor, o.value, o.delete, next(counter)) for o in records)
        batches.append(Batch(sync_id, generation, kind != "incremental", ops_))
    return batches


def purge_log(tables: SilverTables, uri: str) -> None:
    """What Delta's log cleanup does once ``delta.logRetentionDuration`` has passed: a checkpoint, then every
    commit file before it deleted (their commit info, ``lakehouse.sync_id`` etc., with them)."""
    table = DeltaTable(uri, storage_options=tables.options)
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    table = DeltaTable(uri, storage_options=tables.options)
    table.create_checkpoint()
    table.cleanup_metadata()
    assert [h["version"] for h in DeltaTable(uri, storage_options=tables.options).history()] == [table.version()]


def check_any_arrival_order(
    kind: str,
    tmp_path: Path,
    plans: list[tuple[list[Op], str]],
    arrival: Any,
    replay: int,
    keyed: bool,
    purge_after: int | None = None,
) -> None:
    batches = build_batches(plans)
    with lake(kind, tmp_path) as (bronze, tables):
        manifests = {b.sync_id: write(bronze, "src", b, keyed) for b in batches}
        order = list(batches)
        arrival.shuffle(order)
        received: list[Batch] = []
        for index, batch in enumerate(order):
            stale = is_stale(batch, received)
            result = apply_manifest(bronze, tables, manifests[batch.sync_id])
            received.append(batch)
            assert (result.applied, result.skipped is not None) == (not stale, stale)
            # after every arrival, silver is what the batches received so far give in sync order
            assert silver_state(tables, "src", keyed) == expected(received, keyed)
            if index == purge_after:  # the log cleanup removes the history so far: the record must not need it
                purge_log(tables, tables.table_uri("src", "items"))
        all_ids = {b.sync_id for b in batches}
        assert tables.applied_sync_ids("src", "items", candidates=all_ids | {999}) == all_ids

        version = tables.open(tables.table_uri("src", "items")).version()  # type: ignore[union-attr]
        again = apply_manifest(bronze, tables, manifests[batches[replay % len(batches)].sync_id])
        assert not again.applied and again.skipped is None
        assert tables.open(tables.table_uri("src", "items")).version() == version  # type: ignore[union-attr]
        assert silver_state(tables, "src", keyed) == expected(batches, keyed)


class InOrder:
    """Arrival in sync order (for explicit examples)."""

    def shuffle(self, items: list[Any]) -> None:
        pass


purges = st.none() | st.integers(0, 5)  # the log cleanup after that many arrivals (plus one), or never


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=batch_plans,
    arrival=st.randoms(use_true_random=False),
    replay=st.integers(0, 10),
    keyed=st.booleans(),
    purge_after=purges,
)
# a snapshot's delete must stop an older insert after it; a tombstone from before the snapshot must not
@example(
    plans=[
        ([Op(2, 4, "x", True, 0)], "incremental"),
        ([Op(1, 5, "d", True, 0), Op(2, 1, "a", False, 0)], "overwrite"),
        ([Op(1, 3, "x", False, 0), Op(2, 2, "b", False, 0)], "incremental"),
    ],
    arrival=InOrder(),
    replay=0,
    keyed=True,
    purge_after=None,
)
def test_overwrite_and_incremental_batches_equal_the_reference_in_any_arrival_order(
    tmp_path: Path,
    plans: list[tuple[list[Op], str]],
    arrival: Any,
    replay: int,
    keyed: bool,
    purge_after: int | None,
) -> None:
    check_any_arrival_order("local", tmp_path, plans, arrival, replay, keyed, purge_after)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=batch_plans,
    arrival=st.randoms(use_true_random=False),
    replay=st.integers(0, 10),
    keyed=st.booleans(),
    purge_after=purges,
)
def test_overwrite_and_incremental_batches_equal_the_reference_on_s3(
    s3_env: Any,
    tmp_path: Path,
    plans: list[tuple[list[Op], str]],
    arrival: Any,
    replay: int,
    keyed: bool,
    purge_after: int | None,
) -> None:
    check_any_arrival_order("s3", tmp_path, plans, arrival, replay, keyed, purge_after)


def test_an_overwrite_replaces_the_table_in_one_commit(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        first = Batch(1, 1, True, (Op(1, 1, "a", False, 1), Op(2, 1, "b", False, 2), Op(3, 1, "c", False, 3)))
        apply_manifest(bronze, tables, write(bronze, "src", first))
        update = Batch(2, 1, False, (Op(4, 1, "d", False, 4),))
        apply_manifest(bronze, tables, write(bronze, "src", update))
        uri = tables.table_uri("src", "items")
        before = DeltaTable(uri, storage_options=tables.options).version()
        # the new snapshot: key 1 changed, 2 and 4 gone, 3 kept, 5 new; key 5 twice (the newest cursor wins)
        snapshot = Batch(
            3,
            2,
            True,
            (Op(1, 2, "A", False, 5), Op(3, 1, "c", False, 6), Op(5, 2, "new", False, 7), Op(5, 1, "old", False, 8)),
        )
        result = apply_manifest(bronze, tables, write(bronze, "src", snapshot))
        assert (result.applied, result.inserted, result.deleted, result.rows_in) == (True, 3, 4, 4)
        assert silver_rows(tables, "src") == {1: "A", 3: "c", 5: "new"}
        table = DeltaTable(uri, storage_options=tables.options)
        assert table.version() == before + 1  # one atomic commit
        last = table.history(1)[0]
        assert (last["lakehouse.sync_id"], last["lakehouse.generation_id"], last["lakehouse.mode"]) == (
            "3",
            "2",
            "overwrite",
        )
        generations = table.to_pyarrow_table(columns=["_airbyte_generation_id"]).column(0).to_pylist()
        assert set(generations) == {2}  # lineage: only the new generation is left
        # a replay of the snapshot, or of any earlier batch, changes nothing
        for batch in (snapshot, first, update):
            again = apply_manifest(bronze, tables, write(bronze, "src", batch))
            assert not again.applied and again.skipped is None
        assert DeltaTable(uri, storage_options=tables.options).version() == before + 1


def test_an_overwrite_resets_the_tombstones(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        # generation 1: key 1 deleted at cursor 9
        apply_manifest(bronze, tables, write(bronze, "src", Batch(1, 1, True, (Op(1, 1, "a", False, 1),))))
        apply_manifest(bronze, tables, write(bronze, "src", Batch(2, 1, False, (Op(1, 9, "x", True, 2),))))
        assert silver_rows(tables, "src") == {}
        # generation 2 (say, the source was restored): key 1 is back at cursor 3; key 2 deleted in the snapshot
        snapshot = Batch(3, 2, True, (Op(1, 3, "back", False, 3), Op(2, 5, "gone", True, 4)))
        apply_manifest(bronze, tables, write(bronze, "src", snapshot))
        assert silver_rows(tables, "src") == {1: "back"}
        tombstones = DeltaTable(tables.tombstone_uri("src", "items"), storage_options=tables.options)
        assert tombstones.to_pyarrow_table(columns=["id", "updated_at"]).to_pylist() == [{"id": 2, "updated_at": 5}]
        # incremental batches after the snapshot: an older insert of 2 stays deleted, an update of 1 applies,
        # an older version of 1 does not
        later = Batch(
            4, 2, False, (Op(2, 4, "older", False, 5), Op(1, 4, "newer", False, 6), Op(1, 2, "stale", False, 7))
        )
        apply_manifest(bronze, tables, write(bronze, "src", later))
        assert silver_rows(tables, "src") == {1: "newer"}
        # a snapshot without deletes empties the tombstones
        apply_manifest(bronze, tables, write(bronze, "src", Batch(5, 3, True, (Op(2, 1, "two", False, 8),))))
        assert silver_rows(tables, "src") == {2: "two"}
        assert tables.open(tables.tombstone_uri("src", "items")).to_pyarrow_table().num_rows == 0  # type: ignore[union-attr]


def test_a_late_older_generation_is_skipped_and_recorded(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        old_snapshot = Batch(1, 1, True, (Op(1, 1, "a", False, 1), Op(2, 1, "b", False, 2)))
        old_update = Batch(2, 1, False, (Op(3, 5, "c", False, 3),))
        retried_snapshot = Batch(3, 2, True, (Op(9, 1, "quarantined, revalidated later", False, 4),))
        new_snapshot = Batch(4, 2, True, (Op(1, 1, "a", False, 5),))
        manifests = {b.sync_id: write(bronze, "src", b) for b in (old_snapshot, old_update, retried_snapshot)}
        manifests[4] = write(bronze, "src", new_snapshot)
        apply_manifest(bronze, tables, manifests[4])
        uri = tables.table_uri("src", "items")
        for sync_id, generation in ((2, 1), (1, 1), (3, 2)):
            result = apply_manifest(bronze, tables, manifests[sync_id])
            assert not result.applied
            assert result.skipped == (
                f"stale: generation {generation} (sync {sync_id}) is older than the full-refresh snapshot already "
                "in silver (generation 2, sync 4)"
            )
            assert silver_rows(tables, "src") == {1: "a"}
            last = DeltaTable(uri, storage_options=tables.options).history(1)[0]
            assert (last["lakehouse.sync_id"], last["lakehouse.mode"]) == (str(sync_id), "skipped")
            assert last["lakehouse.skipped"] == result.skipped
        # recorded: never pending again, and seeing it again is a plain no-op
        assert tables.applied_sync_ids("src", "items") == {1, 2, 3, 4}
        version = DeltaTable(uri, storage_options=tables.options).version()
        again = apply_manifest(bronze, tables, manifests[2])
        assert (again.applied, again.skipped) == (False, None)
        assert DeltaTable(uri, storage_options=tables.options).version() == version


def test_an_overwrite_arriving_after_later_batches_keeps_their_changes(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        apply_manifest(bronze, tables, write(bronze, "src", Batch(1, 1, True, (Op(1, 9, "gen1", False, 1),))))
        snapshot = Batch(2, 2, True, (Op(1, 3, "snap", False, 2), Op(2, 3, "snap", False, 3)))
        after = Batch(3, 2, False, (Op(1, 5, "after", False, 4), Op(2, 9, "del", True, 5), Op(3, 1, "new", False, 6)))
        snapshot_manifest = write(bronze, "src", snapshot)
        apply_manifest(bronze, tables, write(bronze, "src", after))  # its snapshot is not in silver yet
        result = apply_manifest(bronze, tables, snapshot_manifest)
        assert result.applied
        # as if applied in sync order: key 1 from the later batch although generation 1 had a higher cursor
        assert silver_rows(tables, "src") == {1: "after", 3: "new"}
        last = DeltaTable(tables.table_uri("src", "items"), storage_options=tables.options).history(1)[0]
        assert last["lakehouse.reapplied_sync_ids"] == "3"


def test_overwrite_without_primary_key_keeps_exactly_the_batch_rows(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        apply_manifest(bronze, tables, write(bronze, "logs", Batch(1, 0, False, (Op(1, 1, "a", False, 1),)), False))
        twice = (Op(2, 1, "b", False, 2), Op(2, 1, "b", False, 3), Op(3, 1, "c", True, 4))
        apply_manifest(bronze, tables, write(bronze, "logs", Batch(2, 1, True, twice), False))
        assert silver_state(tables, "logs", keyed=False) == Counter({(2, "b"): 2, (3, "c"): 1})
        apply_manifest(bronze, tables, write(bronze, "logs", Batch(3, 1, False, (Op(4, 1, "d", False, 5),)), False))
        assert silver_state(tables, "logs", keyed=False) == Counter({(2, "b"): 2, (3, "c"): 1, (4, "d"): 1})


def test_an_empty_snapshot_empties_the_table(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        apply_manifest(bronze, tables, write(bronze, "src", Batch(1, 1, True, (Op(1, 1, "a", False, 1),))))
        result = apply_manifest(bronze, tables, write(bronze, "src", Batch(2, 2, True, ())))
        assert (result.applied, result.inserted, result.deleted) == (True, 0, 1)
        assert silver_rows(tables, "src") == {}
        table = tables.open(tables.table_uri("src", "items"))
        assert table is not None and "value" in table.schema().to_arrow().names  # columns are kept
        # a first batch may be an empty snapshot too
        assert apply_manifest(bronze, tables, write(bronze, "other", Batch(1, 1, True, ()))).applied
        assert tables.open(tables.table_uri("other", "items")) is not None


def test_a_crash_inside_an_overwrite_leaves_the_old_table_and_a_rerun_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    apply_manifest(bronze, tables, write(bronze, "src", Batch(1, 1, True, (Op(1, 1, "a", False, 1),))))
    apply_manifest(bronze, tables, write(bronze, "src", Batch(2, 1, False, (Op(2, 9, "x", True, 2),))))
    snapshot = write(bronze, "src", Batch(3, 2, True, (Op(2, 1, "b", False, 3), Op(3, 1, "c", True, 4))))
    real = SilverTables.write

    def crash_on_the_table_commit(self: SilverTables, target: Any, *args: Any, **kwargs: Any) -> None:
        uri = target.table_uri if isinstance(target, DeltaTable) else str(target)
        if kwargs.get("mode") == "overwrite" and "_tombstones" not in uri:
            raise RuntimeError("killed after the tombstones, before the table commit")
        real(self, target, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SilverTables, "write", crash_on_the_table_commit)
        with pytest.raises(RuntimeError):
            apply_manifest(bronze, tables, snapshot)
    assert silver_rows(tables, "src") == {1: "a"}
    assert 3 not in tables.applied_sync_ids("src", "items", candidates=[3])
    # the tombstones carry the batch's transaction too, but only the table's record counts
    tombstones = tables.open(tables.tombstone_uri("src", "items"))
    assert tombstones is not None and tombstones.transaction_version("lakehouse.sync.3") == 2 * 4 + 2
    assert apply_manifest(bronze, tables, snapshot).applied
    assert silver_rows(tables, "src") == {2: "b"}
    dead = tables.open(tables.tombstone_uri("src", "items")).to_pyarrow_table(columns=["id"])  # type: ignore[union-attr]
    assert dead.column("id").to_pylist() == [3]


def test_a_keyed_batch_after_an_empty_first_batch_is_merged(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    assert apply_manifest(bronze, tables, write(bronze, "src", Batch(1, 0, False, ()))).applied
    assert apply_manifest(bronze, tables, write(bronze, "src", Batch(2, 0, False, (Op(1, 1, "a", False, 1),)))).applied
    assert apply_manifest(bronze, tables, write(bronze, "src", Batch(3, 0, False, (Op(1, 2, "b", False, 2),)))).applied
    assert silver_rows(tables, "src") == {1: "b"}


def test_string_keys_with_quotes_merge_within_their_key_range(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    text_keys = {"properties": {**SCHEMA["properties"], "id": {"type": "string"}}}
    first = [Op("o'neil", 1, "a", False, 1), Op("zed", 1, "z", False, 2), Op("adam", 1, "x", False, 3)]  # type: ignore[arg-type]
    apply_manifest(bronze, tables, write_batch(bronze, "src", 1, first, schema=text_keys))
    second = [Op("o'neil", 2, "b", False, 4), Op("o'hara", 1, "c", False, 5), Op("adam", 2, "gone", True, 6)]  # type: ignore[arg-type]
    result = apply_manifest(bronze, tables, write_batch(bronze, "src", 2, second, schema=text_keys))
    assert (result.inserted, result.updated, result.deleted) == (1, 1, 1)
    assert silver_rows(tables, "src") == {"o'neil": "b", "o'hara": "c", "zed": "z"}  # type: ignore[comparison-overlap]
    assert silver_merge._key_ranges(pa.table({"id": ["b'x", "a"], "n": [2, 1]}), ["id", "n"]) == [
        "t.id >= 'a' AND t.id <= 'b''x'",
        "t.n >= 1 AND t.n <= 2",
    ]


def test_an_overwrite_of_several_files_is_streamed_file_by_file(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        apply_manifest(bronze, tables, write(bronze, "src", Batch(1, 1, True, (Op(9, 1, "old", False, 1),))))
        wider = {"properties": {**SCHEMA["properties"], "extra": {"type": "string"}}}
        part_a = write_batch(bronze, "src", 20, [Op(1, 1, "a", False, 2), Op(2, 1, "b-old", False, 3)])
        part_b = write_batch(bronze, "src", 21, [Op(2, 2, "b", False, 4), Op(3, 1, "c", True, 5)], schema=wider)
        snapshot = part_a.model_copy(
            update={
                "sync_id": 22,
                "generation_id": 2,
                "destination_sync_mode": "overwrite",
                "files": part_a.files + part_b.files,
                "rows": 4,
            }
        )
        result = apply_manifest(bronze, tables, snapshot)
        assert (result.applied, result.rows_in, result.inserted, result.deleted) == (True, 4, 2, 1)
        table = tables.open(tables.table_uri("src", "items"))
        assert table is not None
        rows = sorted(table.to_pyarrow_table(columns=["id", "value", "extra"]).to_pylist(), key=lambda r: r["id"])
        assert rows == [{"id": 1, "value": "a", "extra": None}, {"id": 2, "value": "b", "extra": "x"}]
        dead = tables.open(tables.tombstone_uri("src", "items"))
        assert dead is not None and dead.to_pyarrow_table(columns=["id"]).column("id").to_pylist() == [3]

        # a file that disagrees with its manifest stops the overwrite before anything changes
        broken = snapshot.model_copy(
            update={"sync_id": 23, "generation_id": 3, "files": [part_a.files[0].model_copy(update={"rows": 7})]}
        )
        with pytest.raises(Exception, match="holds 2 rows, its manifest says 7"):
            apply_manifest(bronze, tables, broken)
        assert silver_rows(tables, "src") == {1: "a", 2: "b"}
        assert 23 not in tables.applied_sync_ids("src", "items")


# ---------------------------------------------------------------------------------------------------------------
# The exactly-once record: Delta application transactions, which survive checkpoints and log cleanup.


def test_the_record_survives_log_cleanup(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        uri = tables.table_uri("src", "items")
        first = [
            Batch(1, 1, True, (Op(1, 1, "a", False, 1), Op(2, 1, "b", False, 2))),
            Batch(2, 1, False, (Op(3, 1, "c", False, 3),)),
            Batch(5, 2, True, (Op(1, 2, "A", False, 4), Op(4, 1, "d", False, 5))),
            Batch(6, 2, False, (Op(4, 9, "gone", True, 6), Op(5, 1, "e", False, 7))),
        ]
        manifests = {b.sync_id: write(bronze, "src", b) for b in first}
        for sync_id in (1, 2, 5, 6):
            assert apply_manifest(bronze, tables, manifests[sync_id]).applied
        assert silver_rows(tables, "src") == {1: "A", 5: "e"}
        purge_log(tables, uri)
        history = DeltaTable(uri, storage_options=tables.options).history()
        assert not any("lakehouse.sync_id" in h for h in history)  # the commit info of every batch is gone
        version = DeltaTable(uri, storage_options=tables.options).version()

        # (a) a replayed batch is still a no-op
        for sync_id in (1, 2, 5, 6):
            again = apply_manifest(bronze, tables, manifests[sync_id])
            assert (again.applied, again.skipped) == (False, None)
        assert DeltaTable(uri, storage_options=tables.options).version() == version
        assert silver_rows(tables, "src") == {1: "A", 5: "e"}
        assert tables.applied_sync_ids("src", "items", candidates=range(1, 9)) == {1, 2, 5, 6}
        assert tables.applied_sync_ids("src", "items") == set()  # only what the log still names

        # (b) a late older generation is still skipped, and an earlier snapshot of the same generation too
        for stale in (Batch(3, 1, False, (Op(2, 9, "back", False, 8),)), Batch(4, 2, True, (Op(9, 1, "x", False, 9),))):
            skipped = apply_manifest(bronze, tables, write(bronze, "src", stale))
            assert not skipped.applied
            assert skipped.skipped is not None and skipped.skipped.endswith("(generation 2, sync 5)")
        assert silver_rows(tables, "src") == {1: "A", 5: "e"}
        # the tombstone of key 4 (sync 6) holds too
        apply_manifest(bronze, tables, write(bronze, "src", Batch(7, 2, False, (Op(4, 3, "late", False, 10),))))
        assert silver_rows(tables, "src") == {1: "A", 5: "e"}

        # a snapshot arriving after a later batch of its generation, with the log cleaned up in between, still
        # re-reads that batch from bronze
        after = Batch(9, 3, False, (Op(1, 5, "after", False, 11),))
        apply_manifest(bronze, tables, write(bronze, "src", after))
        purge_log(tables, uri)
        result = apply_manifest(bronze, tables, write(bronze, "src", Batch(8, 3, True, (Op(1, 1, "snap", False, 12),))))
        assert result.applied
        assert silver_rows(tables, "src") == {1: "after"}
        last = DeltaTable(uri, storage_options=tables.options).history(1)[0]
        assert last["lakehouse.reapplied_sync_ids"] == "9"
        assert tables.applied_sync_ids("src", "items", candidates=range(1, 12)) == set(range(1, 10))


def test_a_table_from_before_the_record_is_read_from_its_history_then_carried_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    uri = tables.table_uri("src", "items")
    old = [Batch(1, 1, True, (Op(1, 1, "a", False, 1),)), Batch(2, 1, False, (Op(2, 1, "b", False, 2),))]
    manifests = {b.sync_id: write(bronze, "src", b) for b in old}
    with monkeypatch.context() as patch:  # the commits of the previous release: commit info only
        patch.setattr(silver_record.BatchRecord, "transactions", lambda *args: [])
        for batch in old:
            assert apply_manifest(bronze, tables, manifests[batch.sync_id]).applied
    table = DeltaTable(uri)
    assert table.transaction_version(silver_record.SNAPSHOT_APP_ID) is None
    assert tables.applied_sync_ids("src", "items") == {1, 2}
    version = table.version()
    assert not apply_manifest(bronze, tables, manifests[2]).applied  # the history still says so
    assert DeltaTable(uri).version() == version

    # the next commit (here: a stale batch's skip) carries the history over into transactions
    skipped = apply_manifest(bronze, tables, write(bronze, "src", Batch(3, 0, False, (Op(3, 1, "c", False, 3),))))
    assert skipped.skipped is not None and skipped.skipped.endswith("(generation 1, sync 1)")
    table = DeltaTable(uri)
    assert table.transaction_version(silver_record.SNAPSHOT_APP_ID) == 2  # 1 + the sync id of the snapshot
    assert [table.transaction_version(f"lakehouse.sync.{i}") for i in (1, 2, 3)] == [4 + 2, 4 + 1, 0 + 3]
    purge_log(tables, uri)
    for sync_id in (1, 2, 3):
        assert not apply_manifest(bronze, tables, load_manifest(bronze, "src", "items", sync_id)).applied
    stale = apply_manifest(bronze, tables, write(bronze, "src", Batch(4, 0, True, (Op(9, 1, "x", False, 4),))))
    assert stale.skipped is not None
    assert apply_manifest(bronze, tables, write(bronze, "src", Batch(5, 1, False, (Op(5, 1, "e", False, 5),)))).applied
    assert silver_rows(tables, "src") == {1: "a", 2: "b", 5: "e"}


def test_a_commit_from_a_stale_record_conflicts_instead_of_applying_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    apply_manifest(bronze, tables, write(bronze, "logs", Batch(1, 0, False, (Op(1, 1, "a", False, 1),)), False))
    second = write(bronze, "logs", Batch(2, 0, False, (Op(2, 1, "b", False, 2),)), False)
    read_before = tables.record("logs", "items")  # another worker read the record, then this one committed
    apply_manifest(bronze, tables, second)
    with monkeypatch.context() as patch:
        patch.setattr(SilverTables, "record", lambda *args: read_before)
        with pytest.raises(CommitConflict) as info:  # a blind append, which Delta would otherwise let through
            apply_manifest(bronze, tables, second)
    assert isinstance(info.value.__cause__, CommitFailedError) and is_transient(info.value)
    assert silver_state(tables, "logs", keyed=False) == Counter({(1, "a"): 1, (2, "b"): 1})
    assert not apply_manifest(bronze, tables, second).applied
