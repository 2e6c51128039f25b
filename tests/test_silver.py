"""Silver merge: property-based against a reference model, exactly once, crash safety, schema evolution."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse_ingest import silver as silver_module
from lakehouse_ingest.arrow_types import stream_columns
from lakehouse_ingest.records import RecordConverter
from lakehouse_ingest.silver import SilverTables, apply_manifest, latest_per_key
from lakehouse_ingest.storage import LakeStorage, LocalStorage

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
) -> dict[str, Any]:
    """Bronze Parquet for ``ops`` in Airbyte's layout, and the manifest that hands it off."""
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
    table = RecordConverter("items", stream_columns(schema), sync_id, 0).convert(lines)
    key = f"airbyte/{source}/items/2024_01_01_{sync_id}_0.parquet"
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    bronze.put_bytes(key, buffer.getvalue())
    return {
        "source": source,
        "stream": "items",
        "sync_id": sync_id,
        "primary_key": [["id"]] if primary_key is None else primary_key,
        "cursor_field": ["updated_at"],
        "files": [{"key": key, "rows": table.num_rows}],
        "rows": table.num_rows,
    }


def model(batches: list[list[Op]]) -> dict[int, str]:
    """The reference: per key, the newest record (cursor, then extraction order) wins; a delete removes it."""
    winners: dict[int, Op] = {}
    for op in (op for batch in batches for op in batch):
        current = winners.get(op.key)
        if current is None or (op.cursor, op.order) > (current.cursor, current.order):
            winners[op.key] = op
    return {key: op.value for key, op in winners.items() if not op.delete}


def silver_rows(tables: SilverTables, source: str) -> dict[int, str]:
    table = tables.open(tables.table_uri(source, "items"))
    if table is None:
        return {}
    rows = table.to_pyarrow_table(columns=["id", "value"]).to_pylist()
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
        patch.setattr(silver_module, "_merge", crash)  # data files may exist; no commit happens
        with pytest.raises(RuntimeError):
            apply_manifest(bronze, tables, second)
    assert silver_rows(tables, "src") == {1: "a"}
    assert apply_manifest(bronze, tables, second).applied
    assert silver_rows(tables, "src") == {1: "b", 2: "c"}


def test_a_manifest_disagreeing_with_its_files_is_refused(tmp_path: Path) -> None:
    bronze, tables = LocalStorage(tmp_path / "bronze"), SilverTables(LocalStorage(tmp_path / "silver"))
    manifest = write_batch(bronze, "src", 1, [Op(1, 1, "a", False, 1)])
    manifest["files"][0]["rows"] = 5
    with pytest.raises(Exception, match="holds 1 rows, its manifest says 5"):
        apply_manifest(bronze, tables, manifest)
    assert tables.open(tables.table_uri("src", "items")) is None
