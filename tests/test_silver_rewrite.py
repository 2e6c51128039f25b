"""Silver merge by file rewrite (``silver.rewrite``): only the files a batch's keys fall in are rewritten, in one
commit, readable by any engine; equal to the reference model for any file layout; Delta statistics of the files
it writes; tables and batches it leaves to delta-rs ``merge``."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_silver import Op, apply_manifest, lake, model, silver_rows, write_batch

from lakehouse_ingest.errors import CommitConflict
from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.silver.dedup import EXTRACTED
from lakehouse_ingest.silver.delta_stats import delta_stats, string_bound
from lakehouse_ingest.silver.rewrite import rewrite_merge
from lakehouse_ingest.silver.tables import SilverTables


@pytest.fixture(params=["local", "s3"])
def lake_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_env")
    return str(request.param)


def _files_by_range(uri: str, options: dict[str, str]) -> dict[tuple[int, int], str]:
    actions = pa.table(DeltaTable(uri, storage_options=options).get_add_actions(flatten=True)).to_pylist()
    return {(a["min.id"], a["max.id"]): a["path"] for a in actions}


def test_a_batch_rewrites_only_the_files_its_keys_fall_in_in_one_commit(lake_kind: str, tmp_path: Path) -> None:
    with lake(lake_kind, tmp_path) as (bronze, tables):
        uri = tables.table_uri("src", "items")
        order = iter(range(1, 1000))
        ranges = [range(10), range(100, 110), range(200, 210)]
        batches = [[Op(k, 1, f"v{k}", False, next(order)) for k in keys] for keys in ranges]
        for sync_id, ops_ in enumerate(batches, start=1):
            apply_manifest(bronze, tables, write_batch(bronze, "src", sync_id, ops_))
        before = _files_by_range(uri, tables.options)
        assert set(before) == {(0, 9), (100, 109), (200, 209)}  # new keys outside every range: a file of their own
        version = DeltaTable(uri, storage_options=tables.options).version()

        # update 105, delete 3, a stale update of 7, a new key inside 100-109's range and one in a gap
        change = [
            Op(105, 2, "new", False, next(order)),
            Op(3, 2, "gone", True, next(order)),
            Op(7, 0, "stale", False, next(order)),
            Op(150, 1, "gap", False, next(order)),
        ]
        result = apply_manifest(bronze, tables, write_batch(bronze, "src", 4, change))
        assert (result.inserted, result.updated, result.deleted) == (1, 1, 1)
        assert silver_rows(tables, "src") == model([*batches, change])
        table = DeltaTable(uri, storage_options=tables.options)
        assert table.version() == version + 1  # removes, adds and the batch's transactions in one commit
        assert table.transaction_version("lakehouse.sync.4") == 1
        after = _files_by_range(uri, tables.options)
        assert after[(200, 209)] == before[(200, 209)]  # no key of the batch there: not even read
        assert set(after) == {(0, 9), (100, 109), (150, 150), (200, 209)}
        assert after[(0, 9)] != before[(0, 9)] and after[(100, 109)] != before[(100, 109)]
        stats = table.get_add_actions(flatten=True)
        assert sorted(pa.table(stats).column("num_records").to_pylist()) == [1, 9, 10, 10]

        # another engine reads the same table: the rows, exactly once each
        if lake_kind == "local":
            listed = ", ".join(f"'{f}'" for f in table.file_uris())
            found = duckdb.sql(f"SELECT id, value FROM read_parquet([{listed}]) ORDER BY id").fetchall()  # noqa: S608
            assert dict(found) == silver_rows(tables, "src")


def test_a_losing_rewrite_fails_and_its_retry_neither_loses_nor_duplicates_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    first = [Op(k, 1, "a", False, k) for k in range(10)]
    apply_manifest(bronze, tables, write_batch(bronze, "src", 1, first))
    mine = [Op(2, 2, "mine", False, 20), Op(11, 1, "mine-new", False, 21)]
    theirs = [Op(3, 2, "theirs", False, 30), Op(2, 3, "theirs-newer", False, 31)]
    mine_manifest = write_batch(bronze, "src", 2, mine)
    read_before = tables.record("src", "items")  # this worker read the table, then another one committed
    assert apply_manifest(bronze, tables, write_batch(bronze, "src", 3, theirs)).applied
    table_dir = Path(tables.table_uri("src", "items"))
    files_before = set(table_dir.glob("*.parquet"))
    with monkeypatch.context() as patch:
        patch.setattr(SilverTables, "record", lambda *args: read_before)
        with pytest.raises(CommitConflict):  # both rewrite the file of keys 0-9: the later commit loses
            apply_manifest(bronze, tables, mine_manifest)
    assert set(table_dir.glob("*.parquet")) == files_before  # its files were discarded
    assert silver_rows(tables, "src") == model([first, theirs])
    assert apply_manifest(bronze, tables, mine_manifest).applied  # the retry re-reads the table
    assert silver_rows(tables, "src") == model([first, theirs, mine])
    assert silver_rows(tables, "src")[2] == "theirs-newer"


def test_concurrent_rewrites_of_one_file_conflict_even_without_the_record(tmp_path: Path) -> None:
    """Two rewrites from the same table version remove the same file: Delta refuses the second commit, with or
    without the application transactions that make every silver commit conflict."""

    uri = tmp_path / "t"
    rows = pa.table({"id": pa.array(range(10), pa.int64()), "v": ["a"] * 10, EXTRACTED: pa.array(range(10))})
    rows = rows.set_column(2, EXTRACTED, rows.column(EXTRACTED).cast(pa.timestamp("us", "UTC")))
    write_deltalake(str(uri), rows)
    storage = LocalStorage(tmp_path)
    one, two = DeltaTable(str(uri)), DeltaTable(str(uri))
    change = rows.slice(4, 1).set_column(1, "v", pa.array(["b"]))
    change = change.set_column(2, EXTRACTED, pa.array([99], pa.timestamp("us", "UTC")))
    done = rewrite_merge(storage, "t", one, change, ["id"], None, CommitProperties())
    assert done is not None and (done.updated, done.files_removed, done.files_added) == (1, 1, 1)
    with pytest.raises(CommitFailedError):
        rewrite_merge(storage, "t", two, change, ["id"], None, CommitProperties())
    assert DeltaTable(str(uri)).to_pyarrow_table().num_rows == 10


def test_files_without_statistics_or_split_by_size_still_merge_like_the_reference(tmp_path: Path) -> None:
    for properties in ({"delta.dataSkippingNumIndexedCols": "0"}, {"delta.targetFileSize": "3000"}):
        root = tmp_path / uuid.uuid4().hex
        bronze, tables = LocalStorage(root / "bronze"), SilverTables(LocalStorage(root / "silver"))
        order = iter(range(1, 10_000))
        batches = [[Op(k, 1, "x" * 50, False, next(order)) for k in range(0, 200, 2)]]
        apply_manifest(bronze, tables, write_batch(bronze, "src", 1, batches[0]))
        DeltaTable(tables.table_uri("src", "items")).alter.set_table_properties(properties)
        for sync_id in range(2, 5):
            batch = [Op(k, sync_id, f"v{sync_id}", k % 7 == 0, next(order)) for k in range(sync_id, 250, 3)]
            batches.append(batch)
            assert apply_manifest(bronze, tables, write_batch(bronze, "src", sync_id, batch)).applied
            assert silver_rows(tables, "src") == model(batches), properties
        if "delta.targetFileSize" in properties:  # split into files whose key ranges do not overlap
            spans = sorted(_files_by_range(tables.table_uri("src", "items"), {}))
            assert len(spans) > 2
            assert all(high < low for (_, high), (low, _) in itertools.pairwise(spans)), spans


def test_composite_and_timestamp_keys_match_despite_millisecond_statistics(tmp_path: Path) -> None:
    """Delta's timestamp statistics are cut to milliseconds: a key of 2.999 ms has a max statistic of 2 ms, which
    must not hide its row from the batch (or the key would be inserted twice)."""

    stamp = pa.timestamp("us", "UTC")
    for keys in (["at"], ["at", "n"]):
        uri = tmp_path / f"t{len(keys)}"
        rows = pa.table(
            {
                "at": pa.array([1_500, 2_999], stamp),
                "n": pa.array([1, 1], pa.int64()),
                "v": ["a", "b"],
                EXTRACTED: pa.array([1, 1], stamp),
            }
        )
        write_deltalake(str(uri), rows)
        change = pa.table(
            {
                "at": pa.array([2_999, 3_001], stamp),
                "n": pa.array([1, 1], pa.int64()),
                "v": ["B", "c"],
                EXTRACTED: pa.array([5, 5], stamp),
            }
        )
        table = DeltaTable(str(uri))
        done = rewrite_merge(LocalStorage(tmp_path), uri.name, table, change, keys, None, CommitProperties())
        assert done is not None and (done.inserted, done.updated) == (1, 1)
        found = DeltaTable(str(uri)).to_pyarrow_table().sort_by("at").column("v").to_pylist()
        assert found == ["a", "B", "c"], keys


def test_tables_with_writer_features_are_left_to_delta_rs_merge(tmp_path: Path) -> None:

    rows = pa.table({"id": pa.array([1], pa.int64()), EXTRACTED: pa.array([1], pa.timestamp("us", "UTC"))})
    for configuration in ({"delta.enableChangeDataFeed": "true"}, {"delta.appendOnly": "true"}):
        uri = tmp_path / uuid.uuid4().hex
        write_deltalake(str(uri), rows, configuration=configuration)
        table = DeltaTable(str(uri))
        assert rewrite_merge(LocalStorage(tmp_path), uri.name, table, rows, ["id"], None, CommitProperties()) is None
    uri = tmp_path / "plain"
    write_deltalake(str(uri), rows)
    wider = rows.append_column("new", pa.array(["x"]))  # schema evolution: delta-rs merge's rules
    assert (
        rewrite_merge(LocalStorage(tmp_path), "plain", DeltaTable(str(uri)), wider, ["id"], None, CommitProperties())
        is None
    )


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(min_size=0, max_size=40) | st.just("\U0010ffff" * 40), min_size=1, max_size=5))
def test_string_statistics_bound_every_value(values: list[str]) -> None:

    low = string_bound(min(values), upper=False)
    high = string_bound(max(values), upper=True)
    assert low is not None and all(low <= v for v in values)
    assert high is None or all(v <= high for v in values)


def test_delta_statistics_of_a_written_file() -> None:

    stamp = pa.timestamp("us", "UTC")
    table = pa.table(
        {
            "id": pa.array([3, 1, None], pa.int64()),
            "at": pa.array([1_500, 2_999, None], stamp),
            "f": pa.array([1.5, float("nan"), 2.0]),
            "d": pa.array([decimal.Decimal("1.10"), None, None], pa.decimal128(5, 2)),
            "day": pa.array([dt.date(2024, 1, 2), None, dt.date(2024, 1, 1)]),
            "s": ["b" * 40, "a", None],
            "meta": pa.array([{"n": 1, "l": [1]}, {"n": 2, "l": []}, None]),
        }
    )
    buffer = io.BytesIO()
    writer = pq.ParquetWriter(buffer, table.schema)
    writer.write_table(table)
    writer.close()
    stats = json.loads(delta_stats(writer.writer.metadata, table.schema, lambda path: True))
    assert stats["numRecords"] == 3
    assert stats["minValues"] == {
        "id": 1,
        "at": "1970-01-01T00:00:00.001Z",
        "day": "2024-01-01",
        "s": "a",
        "meta": {"n": 1},
        **({"f": 1.5} if "f" in stats["minValues"] else {}),
    }
    assert stats["maxValues"]["at"] == "1970-01-01T00:00:00.003Z"  # 2.999 ms rounds up: still a bound
    assert stats["maxValues"]["s"] == "b" * 31 + "c"  # cut to 32 characters, the last raised
    assert "d" not in stats["minValues"]  # no exact bound for decimals: none rather than a wrong one
    assert stats["nullCount"] == {"id": 1, "at": 1, "f": 0, "d": 2, "day": 1, "s": 1, "meta": {"n": 1}}


def test_an_unsorted_batch_is_sorted_before_its_key_ranges_are_looked_up(tmp_path: Path) -> None:

    stamp = pa.timestamp("us", "UTC")
    uri = tmp_path / "t"
    for keys in (range(10), range(10, 20)):  # two files: 0-9 and 10-19
        rows = pa.table({"id": pa.array(keys, pa.int64()), "v": ["old"] * 10, EXTRACTED: pa.array([1] * 10, stamp)})
        write_deltalake(str(uri), rows, mode="append")
    change = pa.table(
        {"id": pa.array([15, 2, 30, 11], pa.int64()), "v": ["new"] * 4, EXTRACTED: pa.array([5] * 4, stamp)}
    )
    done = rewrite_merge(LocalStorage(tmp_path), "t", DeltaTable(str(uri)), change, ["id"], None, CommitProperties())
    assert done is not None and (done.inserted, done.updated) == (1, 3)
    rows_now = DeltaTable(str(uri)).to_pyarrow_table(columns=["id", "v"]).to_pylist()
    found = {r["id"]: r["v"] for r in rows_now}
    assert len(found) == len(rows_now) == 21
    assert found == {**dict.fromkeys(range(20), "old"), 2: "new", 11: "new", 15: "new", 30: "new"}


def test_files_with_overlapping_key_ranges_are_matched_across_files(tmp_path: Path) -> None:
    """A table written by another writer (or by delta-rs merge) may hold files whose key ranges overlap: a key's
    row may be in any of them, so they are matched together (pass 1) instead of one by one."""

    stamp = pa.timestamp("us", "UTC")
    uri = tmp_path / "t"
    for keys in (range(0, 20, 2), range(1, 20, 2), range(30, 40)):  # evens, odds (overlapping), then 30-39
        rows = pa.table({"id": pa.array(keys, pa.int64()), "v": ["old"] * 10, EXTRACTED: pa.array([2] * 10, stamp)})
        write_deltalake(str(uri), rows, mode="append")
    change = pa.table(
        {
            "id": pa.array([3, 4, 7, 8, 21, 35], pa.int64()),
            "v": ["new", "new", "stale", "new", "new", "new"],
            EXTRACTED: pa.array([5, 5, 1, 5, 5, 5], stamp),
        }
    )
    done = rewrite_merge(LocalStorage(tmp_path), "t", DeltaTable(str(uri)), change, ["id"], None, CommitProperties())
    assert done is not None and (done.inserted, done.updated, done.deleted) == (1, 4, 0)
    rows_now = DeltaTable(str(uri)).to_pyarrow_table(columns=["id", "v"]).to_pylist()
    found = {r["id"]: r["v"] for r in rows_now}
    assert len(found) == len(rows_now) == 31
    expected = {**dict.fromkeys([*range(20), *range(30, 40)], "old"), 3: "new", 4: "new", 8: "new", 21: "new"}
    assert found == {**expected, 35: "new"}


layouts = st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=8, unique=True), min_size=0, max_size=4)
changes = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3), st.booleans()), min_size=1, max_size=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts, change=changes, statistics=st.booleans(), split=st.booleans(), cursors=st.randoms())
def test_the_rewrite_equals_the_reference_for_any_file_layout(
    tmp_path: Path,
    layout: list[list[int]],
    change: list[tuple[int, int, bool]],
    statistics: bool,
    split: bool,
    cursors: Any,
) -> None:
    """Any files (overlapping key ranges or not, with or without statistics, split by size or not) and any batch:
    a batch row replaces the table's row of its key only if newer (cursor, then extraction time), a delete
    removes it, a key shows up once."""

    stamp = pa.timestamp("us", "UTC")
    uri = tmp_path / uuid.uuid4().hex
    table: dict[int, tuple[int, int, str]] = {}  # key -> (cursor, extracted, value)
    seen: set[int] = set()
    configuration = {"delta.dataSkippingNumIndexedCols": "0"} if not statistics else {}
    if split:
        configuration["delta.targetFileSize"] = "1500"
    for number, keys in enumerate(layout):
        keys = [k for k in keys if k not in seen]  # one row per key in the table
        seen.update(keys)
        if not keys:
            continue
        rows = {k: (cursors.randint(0, 3), number + 1, f"t{number}") for k in keys}
        table.update(rows)
        write_deltalake(
            str(uri),
            pa.table(
                {
                    "id": pa.array(keys, pa.int64()),
                    "updated_at": pa.array([rows[k][0] for k in keys], pa.int64()),
                    "v": [rows[k][2] for k in keys],
                    "_ab_cdc_deleted_at": pa.nulls(len(keys), stamp),
                    EXTRACTED: pa.array([rows[k][1] for k in keys], pa.int64()).cast(stamp),
                }
            ),
            mode="append",
            configuration=configuration,
        )
    if not table:
        return
    batch: dict[int, tuple[int, int, bool]] = {}  # the newest per key, as latest_per_key leaves it
    for order, (key, cursor, delete) in enumerate(change):
        if key not in batch or (cursor, order) >= batch[key][:2]:
            batch[key] = (cursor, order, delete)
    keys = sorted(batch)
    latest = pa.table(
        {
            "id": pa.array(keys, pa.int64()),
            "updated_at": pa.array([batch[k][0] for k in keys], pa.int64()),
            "v": [f"b{batch[k][1]}" for k in keys],
            "_ab_cdc_deleted_at": pa.array([1 if batch[k][2] else None for k in keys], pa.int64()).cast(stamp),
            # extracted after some table rows (number + 1 <= 4) and before others: ties go either way
            EXTRACTED: pa.array([2 + batch[k][1] % 3 for k in keys], pa.int64()).cast(stamp),
        }
    )
    expected = {k: row[2] for k, row in table.items()}
    for k in keys:
        cursor, order, delete = batch[k]
        extracted = 2 + order % 3
        old = table.get(k)
        if old is None or (cursor, extracted) > old[:2]:
            if delete:
                expected.pop(k, None)
            else:
                expected[k] = f"b{order}"
    done = rewrite_merge(
        LocalStorage(uri.parent), uri.name, DeltaTable(str(uri)), latest, ["id"], "updated_at", CommitProperties()
    )
    assert done is not None
    rows_now = DeltaTable(str(uri)).to_pyarrow_table(columns=["id", "v"]).to_pylist()
    assert len({r["id"] for r in rows_now}) == len(rows_now), "one row per key"
    assert {r["id"]: r["v"] for r in rows_now} == expected


def test_a_batch_repeating_a_key_is_left_to_delta_rs_merge(tmp_path: Path) -> None:

    stamp = pa.timestamp("us", "UTC")
    rows = pa.table({"id": pa.array([1, 2], pa.int64()), EXTRACTED: pa.array([1, 1], stamp)})
    write_deltalake(str(tmp_path / "t"), rows)
    twice = pa.table({"id": pa.array([2, 2, None, None], pa.int64()), EXTRACTED: pa.array([5, 6, 5, 5], stamp)})
    table = DeltaTable(str(tmp_path / "t"))
    assert rewrite_merge(LocalStorage(tmp_path), "t", table, twice, ["id"], None, CommitProperties()) is None
    nulls = twice.slice(2)  # null keys never match, so they may repeat
    done = rewrite_merge(LocalStorage(tmp_path), "t", table, nulls, ["id"], None, CommitProperties())
    assert done is not None and done.inserted == 2
