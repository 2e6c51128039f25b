"""JSON schema → Arrow types, following Airbyte's S3 destination (≥ 1.0, Parquet).

Rules (airbyte-contract §4.3/4.4): string → utf8, boolean → bool, integer → int64, number → float64,
``format: date`` → date32, ``format: time`` → time64[us], ``format: date-time`` → timestamp[us, UTC],
an object with properties → struct, an array with items → list, and anything schemaless
(object without properties, array without items, no type) → a JSON string. A union of distinct types
becomes ``struct{type: string, <type>: value, ...}``. Column names go through ``names.column_name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import column_name

UTC_MICROS = pa.timestamp("us", tz="UTC")

AIRBYTE_CHANGE = pa.struct(
    [pa.field("field", pa.string()), pa.field("change", pa.string()), pa.field("reason", pa.string())]
)
AIRBYTE_META = pa.struct(
    [
        pa.field("sync_id", pa.int64(), nullable=False),
        pa.field("changes", pa.list_(pa.field("element", AIRBYTE_CHANGE)), nullable=False),
    ]
)
AIRBYTE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_airbyte_raw_id", pa.string(), nullable=False),
    pa.field("_airbyte_extracted_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("_airbyte_meta", AIRBYTE_META, nullable=False),
    pa.field("_airbyte_generation_id", pa.int64(), nullable=False),
)
AIRBYTE_COLUMN_NAMES = tuple(f.name for f in AIRBYTE_FIELDS)

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "boolean": pa.bool_(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": UTC_MICROS,
    "json": pa.string(),
}
# Kinds pyarrow's JSON reader parses straight into their final type.
_FAST_KINDS = {"string", "boolean", "integer", "number", "timestamp"}
# Kinds the fast path reads as strings and casts afterwards (top level only).
_CAST_KINDS = {"date"}


@dataclass(frozen=True)
class ColumnType:
    """The Airbyte type of one JSON value and the Arrow type it is written as."""

    kind: str
    arrow: pa.DataType
    fields: tuple[tuple[str, str, ColumnType], ...] = ()  # object: (json name, column name, type)
    item: ColumnType | None = None  # array
    options: tuple[ColumnType, ...] = field(default=())  # union

    @property
    def fast(self) -> bool:
        """True when pyarrow's JSON reader can parse this value directly into its final type."""
        if self.kind in _FAST_KINDS:
            return True
        if self.kind == "object":
            # Renamed sub-fields would need a struct rebuild: leave those to the exact (slow) path.
            return all(name == col and t.fast for name, col, t in self.fields)
        if self.kind == "array":
            return self.item is not None and self.item.fast
        return False


@dataclass(frozen=True)
class StreamColumns:
    """The data columns of one stream, in schema order."""

    columns: tuple[tuple[str, str, ColumnType], ...]  # (json name, column name, type)

    @property
    def parse_schema(self) -> pa.Schema:
        """The ``data`` schema pyarrow's JSON reader parses with (JSON names; dates read as strings)."""
        return pa.schema(
            [pa.field(name, pa.string() if t.kind in _CAST_KINDS else t.arrow) for name, _, t in self.columns]
        )

    @property
    def arrow_schema(self) -> pa.Schema:
        """Airbyte columns first, then one column per top-level property."""
        data = [pa.field(col, t.arrow) for _, col, t in self.columns]
        return pa.schema([*AIRBYTE_FIELDS, *data])

    @property
    def fast(self) -> bool:
        """True when every column can go through pyarrow's JSON reader (with top-level casts)."""
        return all(t.fast or t.kind in _CAST_KINDS for _, _, t in self.columns)


def stream_columns(json_schema: dict[str, Any]) -> StreamColumns:
    """Map a stream's JSON schema to its Parquet columns; refuse names that collide after sanitizing."""
    properties = json_schema.get("properties") or {}
    if not isinstance(properties, dict):
        raise ConfigError("stream json_schema 'properties' must be an object")
    return StreamColumns(_object_fields(properties, where="stream"))


def column_type(schema: Any) -> ColumnType:
    """The ColumnType of one JSON-schema node."""
    if not isinstance(schema, dict):
        return _scalar("json")
    kinds = _kinds(schema)
    if not kinds:
        return _scalar("json")
    if len(kinds) == 1:
        return _single(kinds[0], schema)
    options = tuple(_single(k, schema) for k in kinds)
    union = pa.struct([pa.field("type", pa.string())] + [pa.field(o.kind, o.arrow) for o in options])
    return ColumnType("union", union, options=options)


def _kinds(schema: dict[str, Any]) -> list[str]:
    """The distinct non-null Airbyte kinds a node allows, in declaration order."""
    raw = schema.get("type")
    types = [raw] if isinstance(raw, str) else list(raw or [])
    found = [_kind(t, schema) for t in types]
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key) or []:
            if isinstance(option, dict):
                # Options are already Airbyte kinds: do not map them through _kind a second time.
                found.extend(_kinds({**option, "format": option.get("format", schema.get("format"))}))
    kinds: list[str] = []
    for kind in found:
        if kind and kind not in kinds:
            kinds.append(kind)
    return kinds


def _kind(json_type: str, schema: dict[str, Any]) -> str | None:
    airbyte_type = str(schema.get("airbyte_type", ""))
    fmt = schema.get("format")
    if json_type == "null":
        return None
    if json_type == "string":
        if fmt == "date-time" or airbyte_type.startswith("timestamp"):
            return "timestamp"
        if fmt == "date":
            return "date"
        if fmt == "time" or airbyte_type.startswith("time_"):
            return "time"
        return "string"
    if json_type == "number" and airbyte_type == "integer":
        return "integer"
    if json_type in {"boolean", "integer", "number", "object", "array"}:
        return json_type
    return "json"


def _single(kind: str, schema: dict[str, Any]) -> ColumnType:
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not properties:
            return _scalar("json")
        fields = _object_fields(properties, where="object")
        return ColumnType("object", pa.struct([pa.field(c, t.arrow) for _, c, t in fields]), fields=fields)
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict) or not items:
            return _scalar("json")
        item = column_type(items)
        return ColumnType("array", pa.list_(pa.field("element", item.arrow)), item=item)
    return _scalar(kind)


def _scalar(kind: str) -> ColumnType:
    return ColumnType(kind, _SCALARS[kind])


def _object_fields(properties: dict[str, Any], where: str) -> tuple[tuple[str, str, ColumnType], ...]:
    fields: list[tuple[str, str, ColumnType]] = []
    seen: dict[str, str] = {}
    for name, node in properties.items():
        col = column_name(str(name))
        if col in seen or col in AIRBYTE_COLUMN_NAMES:
            other = seen.get(col, col)
            raise ConfigError(f"{where} fields {other!r} and {name!r} both map to column {col!r}")
        seen[col] = str(name)
        fields.append((str(name), col, column_type(node)))
    return tuple(fields)
