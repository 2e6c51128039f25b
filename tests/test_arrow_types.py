"""JSON schema → Arrow: the mapping rules of Airbyte's S3 destination (Parquet)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from lakehouse_ingest.bronze.arrow_types import column_type, stream_columns
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import column_name

UTC_US = pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param({"type": "string"}, pa.string(), id="string"),
        pytest.param({"type": "boolean"}, pa.bool_(), id="boolean"),
        pytest.param({"type": "integer"}, pa.int64(), id="integer"),
        pytest.param({"type": "number"}, pa.float64(), id="number"),
        pytest.param({"type": "number", "airbyte_type": "integer"}, pa.int64(), id="number-as-integer"),
        pytest.param({"type": "string", "format": "date"}, pa.date32(), id="date"),
        pytest.param({"type": "string", "format": "time"}, pa.time64("us"), id="time"),
        pytest.param({"type": "string", "format": "date-time"}, UTC_US, id="date-time"),
        pytest.param({"type": "string", "airbyte_type": "timestamp_without_timezone"}, UTC_US, id="timestamp-no-tz"),
        pytest.param({"type": ["null", "string"]}, pa.string(), id="nullable-string"),
        pytest.param({"type": ["null", "integer"]}, pa.int64(), id="nullable-integer"),
        pytest.param({"type": ["null", "string"], "format": "date-time"}, UTC_US, id="nullable-date-time"),
        pytest.param({"type": "object"}, pa.string(), id="object-without-properties"),
        pytest.param({"type": "object", "properties": {}}, pa.string(), id="object-empty-properties"),
        pytest.param({"type": "array"}, pa.string(), id="array-without-items"),
        pytest.param({}, pa.string(), id="missing-type"),
        pytest.param({"type": "null"}, pa.string(), id="only-null"),
        pytest.param(
            {"type": "array", "items": {"type": "integer"}},
            pa.list_(pa.field("element", pa.int64())),
            id="array-of-integers",
        ),
        pytest.param(
            {"type": "array", "items": {"type": "object"}},
            pa.list_(pa.field("element", pa.string())),
            id="array-of-schemaless-objects",
        ),
    ],
)
def test_column_type(schema: dict[str, Any], expected: pa.DataType) -> None:
    assert column_type(schema).arrow == expected


def test_object_with_properties_is_a_nested_struct() -> None:
    schema = {
        "type": ["null", "object"],
        "properties": {
            "city": {"type": "string"},
            "geo": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "seen": {"type": "string", "format": "date"}},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    assert column_type(schema).arrow == pa.struct(
        [
            pa.field("city", pa.string()),
            pa.field("geo", pa.struct([pa.field("lat", pa.float64()), pa.field("seen", pa.date32())])),
            pa.field("tags", pa.list_(pa.field("element", pa.string()))),
        ]
    )


def test_union_is_a_tagged_struct() -> None:
    ctype = column_type({"type": ["null", "string", "integer"]})
    assert ctype.kind == "union"
    assert ctype.arrow == pa.struct(
        [pa.field("type", pa.string()), pa.field("string", pa.string()), pa.field("integer", pa.int64())]
    )


def test_one_of_becomes_a_union() -> None:
    ctype = column_type({"oneOf": [{"type": "boolean"}, {"type": "string", "format": "date-time"}]})
    assert ctype.arrow == pa.struct(
        [pa.field("type", pa.string()), pa.field("boolean", pa.bool_()), pa.field("timestamp", UTC_US)]
    )


def test_nullable_any_of_keeps_the_option_format() -> None:
    assert column_type({"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]}).arrow == pa.date32()


def test_arrow_schema_starts_with_airbyte_fields() -> None:
    columns = stream_columns({"properties": {"id": {"type": "integer"}, "name": {"type": "string"}}})
    schema = columns.arrow_schema
    change = pa.struct(
        [pa.field("field", pa.string()), pa.field("change", pa.string()), pa.field("reason", pa.string())]
    )
    meta = pa.struct(
        [
            pa.field("sync_id", pa.int64(), nullable=False),
            pa.field("changes", pa.list_(pa.field("element", change)), nullable=False),
        ]
    )
    expected = pa.schema(
        [
            pa.field("_airbyte_raw_id", pa.string(), nullable=False),
            pa.field("_airbyte_extracted_at", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("_airbyte_meta", meta, nullable=False),
            pa.field("_airbyte_generation_id", pa.int64(), nullable=False),
            pa.field("id", pa.int64()),
            pa.field("name", pa.string()),
        ]
    )
    assert schema.equals(expected)  # field equality includes nullability, nested ones too


def test_stream_without_properties_has_only_airbyte_fields() -> None:
    assert stream_columns({"type": "object"}).arrow_schema.names == [
        "_airbyte_raw_id",
        "_airbyte_extracted_at",
        "_airbyte_meta",
        "_airbyte_generation_id",
    ]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Prénom Nom", "Prenom_Nom"),
        ("1st", "_1st"),
        ("a-b.c", "a_b_c"),
        ("plain_name", "plain_name"),
        ("", "_"),
    ],
)
def test_column_name(field: str, expected: str) -> None:
    assert column_name(field) == expected


def test_columns_are_sanitized_in_schema_and_nested_structs() -> None:
    columns = stream_columns(
        {
            "properties": {
                "Prénom Nom": {"type": "string"},
                "1st": {"type": "object", "properties": {"a-b.c": {"type": "integer"}}},
            }
        }
    )
    assert columns.arrow_schema.names[4:] == ["Prenom_Nom", "_1st"]
    assert columns.arrow_schema.field("_1st").type == pa.struct([pa.field("a_b_c", pa.int64())])
    # The JSON names are kept for parsing.
    assert [name for name, _, _ in columns.columns] == ["Prénom Nom", "1st"]


@pytest.mark.parametrize(
    "properties",
    [
        pytest.param({"a b": {"type": "string"}, "a_b": {"type": "string"}}, id="top-level"),
        pytest.param(
            {"o": {"type": "object", "properties": {"x-y": {"type": "string"}, "x_y": {"type": "integer"}}}},
            id="nested",
        ),
        pytest.param({"_airbyte_raw_id": {"type": "string"}}, id="airbyte-column"),
    ],
)
def test_colliding_columns_are_refused(properties: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="both map to column"):
        stream_columns({"properties": properties})


FAKER_USERS = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        "updated_at": {"type": "string", "format": "date-time"},
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "height": {"type": "string"},
        "weight": {"type": "integer"},
        "email": {"type": "string"},
        "birthday": {"type": "string", "format": "date"},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "postal_code": {"type": "string"}},
        },
        "scores": {"type": "array", "items": {"type": "number"}},
    },
}


@pytest.mark.parametrize(
    ("extra", "fast"),
    [
        pytest.param({}, True, id="faker-like"),
        pytest.param({"blob": {"type": "object"}}, False, id="json-string-column"),
        pytest.param({"any": {}}, False, id="untyped-column"),
        pytest.param({"u": {"type": ["string", "integer"]}}, False, id="union-column"),
        pytest.param({"t": {"type": "string", "format": "time"}}, False, id="time-column"),
        pytest.param(
            {"o": {"type": "object", "properties": {"Renamed Field": {"type": "string"}}}},
            False,
            id="renamed-nested-field",
        ),
        pytest.param({"Top Level Renamed": {"type": "string"}}, True, id="renamed-top-level-field"),
    ],
)
def test_fast_flag(extra: dict[str, Any], fast: bool) -> None:
    schema = {**FAKER_USERS, "properties": {**FAKER_USERS["properties"], **extra}}
    assert stream_columns(schema).fast is fast


def test_non_object_properties_are_refused() -> None:
    with pytest.raises(ConfigError, match="properties"):
        stream_columns({"properties": ["id"]})
