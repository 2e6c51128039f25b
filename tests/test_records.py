"""RECORD lines → Arrow tables: the fast (pyarrow JSON reader) and exact (per value) paths agree."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest

from lakehouse_ingest.bronze.arrow_types import stream_columns
from lakehouse_ingest.sources.embedded.records import RecordConverter

SYNC_ID = 4242
GENERATION_ID = 3
EMITTED_AT = 1_700_000_000_123

USERS = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "birthday": {"type": "string", "format": "date"},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}

VALID_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "Ada",
        "score": 1.5,
        "active": True,
        "created_at": "2024-03-01T12:30:00.250000+00:00",
        "birthday": "1990-12-10",
        "address": {"city": "Paris", "zip": 75001, "unknown": "ignored"},
        "tags": ["a", "b"],
        "not_in_schema": 1,
    },
    {"id": 2, "name": None, "score": 3, "active": False, "tags": []},
    {"id": 3, "address": {"city": None}, "created_at": "2024-03-01T12:30:00Z"},
    {},
]


def record_line(data: dict[str, Any], stream: str = "users", emitted_at: int = EMITTED_AT, meta: Any = None) -> bytes:
    record: dict[str, Any] = {"stream": stream, "data": data, "emitted_at": emitted_at}
    if meta is not None:
        record["meta"] = meta
    return json.dumps({"type": "RECORD", "record": record}).encode()


def converter(schema: dict[str, Any] = USERS) -> RecordConverter:
    return RecordConverter("users", stream_columns(schema), SYNC_ID, GENERATION_ID)


def one_column(column: str, kind: dict[str, Any]) -> RecordConverter:
    return converter({"type": "object", "properties": {"id": {"type": "integer"}, column: kind}})


def without_raw_id(table: pa.Table) -> pa.Table:
    return table.drop_columns(["_airbyte_raw_id"])


def nulled(field: str) -> dict[str, str]:
    return {"field": field, "change": "NULLED", "reason": "DESTINATION_SERIALIZATION_ERROR"}


def test_airbyte_columns() -> None:
    conv = converter()
    lines = [record_line(row, emitted_at=EMITTED_AT + i) for i, row in enumerate(VALID_ROWS)]
    table = conv.convert(lines)

    assert conv.fast_enabled
    assert table.schema == stream_columns(USERS).arrow_schema
    assert table.num_rows == len(VALID_ROWS)
    meta = table.column("_airbyte_meta").to_pylist()
    assert [m["sync_id"] for m in meta] == [SYNC_ID] * len(VALID_ROWS)
    assert [m["changes"] for m in meta] == [[]] * len(VALID_ROWS)
    assert table.column("_airbyte_generation_id").to_pylist() == [GENERATION_ID] * len(VALID_ROWS)
    extracted = table.column("_airbyte_extracted_at").cast(pa.int64()).to_pylist()
    assert extracted == [EMITTED_AT + i for i in range(len(VALID_ROWS))]
    raw_ids = table.column("_airbyte_raw_id").to_pylist()
    assert len(set(raw_ids)) == len(raw_ids)
    assert all(str(uuid.UUID(raw_id)) == raw_id for raw_id in raw_ids)


def test_data_values() -> None:
    table = converter().convert([record_line(VALID_ROWS[0])])
    row = without_raw_id(table).drop_columns(["_airbyte_extracted_at", "_airbyte_meta"]).to_pylist()[0]
    assert row == {
        "_airbyte_generation_id": GENERATION_ID,
        "id": 1,
        "name": "Ada",
        "score": 1.5,
        "active": True,
        "created_at": datetime(2024, 3, 1, 12, 30, 0, 250000, tzinfo=UTC),
        "birthday": date(1990, 12, 10),
        "address": {"city": "Paris", "zip": 75001},
        "tags": ["a", "b"],
    }


def test_fast_and_exact_paths_agree() -> None:
    conv = converter()
    lines = [record_line(row) for row in VALID_ROWS]
    fast = without_raw_id(conv._convert_fast(lines))
    exact = without_raw_id(conv._convert_exact(lines))
    assert fast.schema == exact.schema
    assert fast.equals(exact)


def test_empty_chunk_is_an_empty_table_with_the_schema() -> None:
    table = converter().convert([])
    assert table.num_rows == 0
    assert table.schema == stream_columns(USERS).arrow_schema


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        pytest.param("created_at", "not-a-date", id="bad-date-time"),
        pytest.param("birthday", "2024-02-30", id="impossible-date"),
        pytest.param("id", "abc", id="string-in-integer"),
        pytest.param("id", 2**70, id="integer-overflow"),
        pytest.param("id", 1.5, id="fraction-in-integer"),
        pytest.param("active", "true", id="string-in-boolean"),
        pytest.param("score", "1.5", id="string-in-number"),
        pytest.param("tags", "a", id="string-in-array"),
    ],
)
def test_bad_value_is_nulled_for_that_row_only(column: str, bad: Any) -> None:
    conv = converter()
    good = {"id": 7, "created_at": "2024-01-01T00:00:00Z", "birthday": "2024-01-01", "active": True}
    good |= {"score": 2.0, "tags": ["x"]}
    lines = [record_line(good), record_line({**good, column: bad}), record_line(good)]
    table = conv.convert(lines)

    assert table.schema == conv.schema
    values = table.column(column).to_pylist()
    assert values[1] is None
    assert values[0] is not None
    assert values[0] == values[2]
    assert [m["changes"] for m in table.column("_airbyte_meta").to_pylist()] == [[], [nulled(column)], []]


def test_bad_nested_value_names_its_path() -> None:
    table = converter().convert([record_line({"id": 1, "address": {"city": "X", "zip": "no"}})])
    assert table.column("address").to_pylist() == [{"city": "X", "zip": None}]
    assert table.column("_airbyte_meta").to_pylist()[0]["changes"] == [nulled("address.zip")]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"score": 1e400}, id="top-level"),
        pytest.param({"scores": [1.0, -1e400]}, id="in-array"),
    ],
)
def test_number_beyond_float64_is_nulled_on_both_paths(data: dict[str, Any]) -> None:
    conv = converter(
        {
            "properties": {
                "score": {"type": "number"},
                "scores": {"type": "array", "items": {"type": "number"}},
            }
        }
    )
    line = [record_line(data)]
    table = conv.convert(line)
    assert without_raw_id(table).equals(without_raw_id(conv._convert_exact(line)))
    (field,) = data
    expected = nulled("score") if field == "score" else nulled("scores[1]")
    assert table.column("_airbyte_meta").to_pylist()[0]["changes"] == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, "12"), (1.5, "1.5"), (True, "true"), ({"a": [1, 2]}, '{"a":[1,2]}'), ("text", "text")],
)
def test_non_string_in_string_column_is_stringified(value: Any, expected: str) -> None:
    table = one_column("s", {"type": "string"}).convert([record_line({"s": value})])
    assert table.column("s").to_pylist() == [expected]
    assert table.column("_airbyte_meta").to_pylist()[0]["changes"] == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": "é"}, '{"b":1,"a":"é"}'),
        ([1, "x"], '[1,"x"]'),
        ("already text", '"already text"'),
        (5, "5"),
    ],
)
def test_schemaless_object_becomes_json_string(value: Any, expected: str) -> None:
    conv = one_column("blob", {"type": "object"})
    assert not conv.fast_enabled
    table = conv.convert([record_line({"blob": value})])
    assert table.schema.field("blob").type == pa.string()
    assert table.column("blob").to_pylist() == [expected]
    assert json.loads(table.column("blob")[0].as_py()) == value


def test_union_values_are_tagged() -> None:
    conv = one_column("u", {"type": ["null", "string", "integer"]})
    rows = [{"u": "abc"}, {"u": 12}, {"u": None}, {"u": [1]}]
    table = conv.convert([record_line(row) for row in rows])
    assert table.column("u").to_pylist() == [
        {"type": "string", "string": "abc", "integer": None},
        {"type": "integer", "string": None, "integer": 12},
        None,
        None,
    ]
    changes = [m["changes"] for m in table.column("_airbyte_meta").to_pylist()]
    assert changes == [[], [], [], [nulled("u")]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:00:00+02:00", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01T12:00:00-05:30", datetime(2024, 3, 1, 17, 30, tzinfo=UTC)),
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
        ("2024-03-01T12:00:00", datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
        ("2024-03-01 12:00:00.5", datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize("path", ["convert", "_convert_exact"])
def test_timestamps_are_utc(text: str, expected: datetime, path: str) -> None:
    conv = one_column("ts", {"type": "string", "format": "date-time"})
    table = getattr(conv, path)([record_line({"ts": text})])
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("ts").to_pylist() == [expected]


@pytest.mark.parametrize("path", ["convert", "_convert_exact"])
def test_dates_become_date32(path: str) -> None:
    conv = one_column("d", {"type": "string", "format": "date"})
    table = getattr(conv, path)([record_line({"d": "2024-02-29"}), record_line({"d": None})])
    assert table.column("d").type == pa.date32()
    assert table.column("d").to_pylist() == [date(2024, 2, 29), None]


def test_source_changes_are_kept() -> None:
    source_change = {"field": "bio", "change": "TRUNCATED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}
    meta = {"changes": [source_change]}
    conv = converter()
    clean = [record_line({"id": 1}, meta=meta), record_line({"id": 2})]
    # Fast path (all values fit) and fallback path (second row has a bad value).
    fallback = [record_line({"id": 1}, meta=meta), record_line({"id": "x"}, meta=meta)]

    assert [m["changes"] for m in conv.convert(clean).column("_airbyte_meta").to_pylist()] == [
        [source_change],
        [],
    ]
    assert [m["changes"] for m in conv.convert(fallback).column("_airbyte_meta").to_pylist()] == [
        [source_change],
        [source_change, nulled("id")],
    ]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(record_line({"id": 2}, stream="orders"), id="other-stream"),
        pytest.param(b'{"type":"STATE","state":{"type":"STREAM"}}', id="state-line"),
    ],
)
def test_foreign_line_in_chunk_is_refused(other: bytes) -> None:
    conv = converter()
    with pytest.raises(ValueError, match="not a RECORD of stream 'users'"):
        conv.convert([record_line({"id": 1}), other])


def test_unusual_key_order_converts() -> None:
    line = b'{"record":{"emitted_at":1700000000999,"data":{"name":"Bo","id":9},"stream":"users"},"type":"RECORD"}'
    conv = converter()
    table = conv.convert([line, record_line({"id": 10})])
    assert table.column("id").to_pylist() == [9, 10]
    assert table.column("name").to_pylist() == ["Bo", None]
    assert table.column("_airbyte_extracted_at").cast(pa.int64()).to_pylist() == [
        1_700_000_000_999,
        EMITTED_AT,
    ]
    assert without_raw_id(conv._convert_exact([line])).equals(without_raw_id(conv._convert_fast([line])))


def test_sanitized_column_names_on_both_paths() -> None:
    conv = converter({"properties": {"Prénom Nom": {"type": "string"}, "1st": {"type": "integer"}}})
    line = [record_line({"Prénom Nom": "Zoé", "1st": 1})]
    for table in (conv.convert(line), conv._convert_exact(line)):
        assert table.schema.names[4:] == ["Prenom_Nom", "_1st"]
        assert table.select(["Prenom_Nom", "_1st"]).to_pylist() == [{"Prenom_Nom": "Zoé", "_1st": 1}]
