"""Protocol RECORD lines of one stream → an Arrow table in Airbyte's S3/Parquet layout.

Two paths give the same result:

- the fast path hands a chunk of raw lines to pyarrow's JSON reader with an explicit schema
  (about 3x cheaper than ``json.loads`` + ``from_pylist``), used when every column can be parsed natively;
- the exact path parses line by line and coerces every value the way Airbyte's destination does:
  a value that does not fit its column becomes null and is recorded in ``_airbyte_meta.changes``.

A chunk that the fast path rejects (a bad value, an unexpected shape) is redone on the exact path, so
one odd record never fails a sync.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_CHANGE, AIRBYTE_META, ColumnType, StreamColumns

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NULLED = "NULLED"
SERIALIZATION_ERROR = "DESTINATION_SERIALIZATION_ERROR"

Change = dict[str, str]


class RecordConverter:
    """Converts chunks of one stream's RECORD lines into tables with the stream's Parquet schema."""

    def __init__(self, stream: str, columns: StreamColumns, sync_id: int, generation_id: int) -> None:
        self.stream = stream
        self.columns = columns
        self.schema = columns.arrow_schema
        self.sync_id = sync_id
        self.generation_id = generation_id
        self.fast_enabled = columns.fast
        self._envelope = _envelope_schema(columns.parse_schema)

    def convert(self, lines: Sequence[bytes]) -> pa.Table:
        """Convert raw protocol lines (each one RECORD of this stream) into one table."""
        if not lines:
            return self.schema.empty_table()
        if self.fast_enabled:
            try:
                return self._convert_fast(lines)
            except (pa.ArrowInvalid, pa.ArrowTypeError, _NotThisStreamError):
                pass
        return self._convert_exact(lines)

    # -- fast path -------------------------------------------------------------------------------
    def _convert_fast(self, lines: Sequence[bytes]) -> pa.Table:
        payload = b"\n".join(line.rstrip(b"\r\n") for line in lines)
        table = pa_json.read_json(
            io.BytesIO(payload),
            read_options=pa_json.ReadOptions(block_size=max(1 << 20, len(payload) + 1)),
            parse_options=pa_json.ParseOptions(explicit_schema=self._envelope, unexpected_field_behavior="ignore"),
        )
        record = table.column("record").combine_chunks()
        if record.null_count or record.field("stream").to_pylist().count(self.stream) != len(record):
            raise _NotThisStreamError
        data = record.field("data")
        columns: list[pa.Array] = []
        for index, (_, _, ctype) in enumerate(self.columns.columns):
            child = data.field(index)
            if data.null_count:
                child = pc.if_else(data.is_null(), pa.nulls(len(child), child.type), child)
            columns.append(child.cast(ctype.arrow) if child.type != ctype.arrow else child)
        if any(_has_infinity(column) for column in columns):
            raise pa.ArrowInvalid("number out of float64 range")  # the exact path nulls it
        extracted = record.field("emitted_at")
        if extracted.null_count:
            raise pa.ArrowInvalid("RECORD without emitted_at")
        meta_changes = _source_changes(record)
        return self._assemble(len(record), extracted.cast(pa.int64()), meta_changes, columns)

    # -- exact path ------------------------------------------------------------------------------
    def _convert_exact(self, lines: Sequence[bytes]) -> pa.Table:
        values: list[list[Any]] = [[] for _ in self.columns.columns]
        emitted: list[int] = []
        changes: list[list[Change]] = []
        for line in lines:
            message = json.loads(line)
            record = message.get("record") if isinstance(message, dict) else None
            if not isinstance(record, dict) or record.get("stream") != self.stream:
                raise ValueError(f"not a RECORD of stream {self.stream!r}: {line[:200]!r}")
            data = record.get("data")
            if not isinstance(data, dict):
                data = {}
            row_changes: list[Change] = list((record.get("meta") or {}).get("changes") or [])
            for index, (name, col, ctype) in enumerate(self.columns.columns):
                values[index].append(coerce(data.get(name), ctype, col, row_changes))
            emitted.append(
                int(record.get("emitted_at") or datetime.now(UTC).timestamp() * 1000)
            )  # required; tolerate its absence
            changes.append(row_changes)
        arrays = [pa.array(v, type=t.arrow) for v, (_, _, t) in zip(values, self.columns.columns, strict=True)]
        changes_array = pa.array(changes, type=pa.list_(pa.field("element", AIRBYTE_CHANGE)))
        return self._assemble(len(emitted), pa.array(emitted, pa.int64()), changes_array, arrays)

    # -- shared ----------------------------------------------------------------------------------
    def _assemble(self, rows: int, emitted_ms: pa.Array, changes: pa.Array | None, data: list[pa.Array]) -> pa.Table:
        raw_ids = pa.array([str(uuid.uuid4()) for _ in range(rows)], pa.string())
        extracted = emitted_ms.cast(pa.timestamp("ms", tz="UTC"))
        if changes is None:
            changes = pa.ListArray.from_arrays(
                pa.array([0] * (rows + 1), pa.int32()), pa.array([], AIRBYTE_CHANGE)
            ).cast(AIRBYTE_META.field("changes").type)
        meta = pa.StructArray.from_arrays(
            [pa.array([self.sync_id] * rows, pa.int64()), changes], fields=list(AIRBYTE_META)
        )
        generation = pa.array([self.generation_id] * rows, pa.int64())
        return pa.Table.from_arrays([raw_ids, extracted, meta, generation, *data], schema=self.schema)


class _NotThisStreamError(Exception):
    """A chunk held a record of another stream or a non-record line: redo it on the exact path."""


def _envelope_schema(data_schema: pa.Schema) -> pa.Schema:
    record = pa.struct(
        [
            pa.field("stream", pa.string()),
            pa.field("emitted_at", pa.float64()),
            pa.field("data", pa.struct(list(data_schema))),
            pa.field("meta", pa.struct([pa.field("changes", pa.list_(AIRBYTE_CHANGE))])),
        ]
    )
    return pa.schema([pa.field("record", record)])


def _has_infinity(array: pa.Array) -> bool:
    """True when a float anywhere in ``array`` is infinite (a JSON number beyond float64's range)."""
    if pa.types.is_floating(array.type):
        return bool(pc.any(pc.is_inf(array)).as_py())
    if pa.types.is_struct(array.type):
        return any(_has_infinity(array.field(i)) for i in range(array.type.num_fields))
    if pa.types.is_list(array.type):
        return _has_infinity(array.flatten())
    return False


def _source_changes(record: pa.StructArray) -> pa.Array | None:
    """Changes a source already reported in ``record.meta.changes`` (nulls become empty lists)."""
    changes = record.field("meta").field("changes")
    if changes.null_count == len(changes):
        return None
    filled = pc.fill_null(changes, pa.scalar([], changes.type))
    return filled.cast(AIRBYTE_META.field("changes").type)


def coerce(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> Any:
    """Coerce one JSON value to its column type; a misfit becomes None plus a NULLED change."""
    if value is None:
        return None
    try:
        return _COERCERS[ctype.kind](value, ctype, path, changes)
    except (TypeError, ValueError, OverflowError):
        changes.append({"field": path, "change": NULLED, "reason": SERIALIZATION_ERROR})
        return None


def _string(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _boolean(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError("not a boolean")


def _integer(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> int:
    if isinstance(value, bool):
        raise TypeError("boolean is not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not an integer")
        value = int(value)
    if not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("not an int64")
    return value


def _number(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _timestamp(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> datetime:
    parsed = datetime.fromisoformat(_text(value).replace(" ", "T", 1))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _date(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> date:
    return date.fromisoformat(_text(value))


def _time(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> time:
    parsed = time.fromisoformat(_text(value))
    if parsed.tzinfo is not None:  # Airbyte converts times with a zone to UTC
        shifted = datetime.combine(date(2000, 1, 1), parsed).astimezone(UTC)
        return shifted.time()
    return parsed


def _json(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _object(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return {col: coerce(value.get(name), t, f"{path}.{col}", changes) for name, col, t in ctype.fields}


def _array(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> list[Any]:
    if not isinstance(value, list) or ctype.item is None:
        raise TypeError("not an array")
    return [coerce(v, ctype.item, f"{path}[{i}]", changes) for i, v in enumerate(value)]


def _union(value: Any, ctype: ColumnType, path: str, changes: list[Change]) -> dict[str, Any]:
    for option in ctype.options:
        if _matches(value, option.kind):
            scratch: list[Change] = []
            coerced = coerce(value, option, path, scratch)
            if not scratch:
                return {"type": option.kind, option.kind: coerced}
    raise TypeError("value matches no option of the union")


def _matches(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if isinstance(value, int):
        return kind in {"integer", "number"}
    if isinstance(value, float):
        return kind == "number"
    if isinstance(value, str):
        return kind in {"string", "timestamp", "date", "time"}
    if isinstance(value, dict):
        return kind in {"object", "json"}
    return isinstance(value, list) and kind in {"array", "json"}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


_COERCERS = {
    "string": _string,
    "boolean": _boolean,
    "integer": _integer,
    "number": _number,
    "timestamp": _timestamp,
    "date": _date,
    "time": _time,
    "json": _json,
    "object": _object,
    "array": _array,
    "union": _union,
}
