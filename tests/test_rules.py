"""The catalog's declarative rules (``streams[].checks``) on real Parquet, through the real storage.

Every batch is converted by RecordConverter, written as Parquet and published through the storage
fixture (a local directory and SeaweedFS S3), then judged by validate_batch exactly as the flow does.
Bad values carry the marker ``LEAK``: results must never quote data, so it must not appear in them.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_checks import SOURCE, STREAM, SYNC_ID, assert_failed, build_batch, corrupt_column, without_statistics

from lakehouse_ingest.bronze.arrow_types import AIRBYTE_META, stream_columns
from lakehouse_ingest.bronze.checks import scan, uniqueness
from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.bronze.checks.validate import BatchValidation, batch_schema, validate_batch
from lakehouse_ingest.catalog.sources import FreshnessRule, RangeRule, StreamChecks, parse_catalog
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.keys import stream_prefix
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.embedded.records import RecordConverter

LEAK = "LEAK-9f2c"
COLUMNS = stream_columns(
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "status": {"type": "string"},
            "amount": {"type": "number"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }
)
OLD_MS = SYNC_ID + 1_000  # May 2024: long ago


def row(i: int, **data: Any) -> dict[str, Any]:
    """A valid row; keyword arguments override its values."""
    return {
        "id": i,
        "name": f"name-{i}",
        "status": "active",
        "amount": float(i),
        "updated_at": "2024-05-17T08:00:00Z",
    } | data


def table(rows: list[dict[str, Any]], emitted_at: int = OLD_MS) -> pa.Table:
    """The rows converted exactly as the engine converts them."""
    lines = [
        json.dumps({"type": "RECORD", "record": {"stream": STREAM, "data": r, "emitted_at": emitted_at}}).encode()
        for r in rows
    ]
    return RecordConverter(STREAM, COLUMNS, sync_id=SYNC_ID, generation_id=0).convert(lines)


def rows(ids: range | list[int]) -> list[dict[str, Any]]:
    return [row(i) for i in ids]


def validate(
    storage: LakeStorage,
    tmp_path: Path,
    parts: list[pa.Table],
    checks: StreamChecks | None = None,
    *,
    statistics: bool = True,
    primary_key: list[list[str]] | None = None,
    row_group_rows: int = 2,
    destination_sync_mode: str = "append",
    **kwargs: Any,
) -> tuple[BatchValidation, list[str]]:
    """Publish ``parts`` as a batch (``statistics=False``: rewritten without footer statistics) and validate it."""
    for obj in storage.list(stream_prefix(SOURCE, STREAM)):  # a test may validate several batches in turn
        storage.delete(obj.key)
    batch = build_batch(storage, tmp_path / "staging", parts, row_group_rows=row_group_rows)
    if primary_key is not None:
        batch.primary_key = primary_key
    batch.destination_sync_mode = destination_sync_mode
    if not statistics:
        without_statistics(storage, [f.key for f in batch.files], row_group_rows)
    return validate_batch(storage, batch, checks, **kwargs), [f.key for f in batch.files]


def check(result: BatchValidation, name: str) -> CheckResult:
    (found,) = [c for c in result.checks if c.name == name]
    return found


def assert_no_data(result: BatchValidation) -> None:
    text = " ".join(f"{c.detail} {c.file}" for c in result.checks) + (result.failure or "")
    assert LEAK not in text


def assert_passes(result: BatchValidation, name: str) -> CheckResult:
    assert result.passed, result.failure
    return check(result, name)


# -- batch size -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("minimum", "passes"), [(7, True), (8, False)])
def test_min_records(storage: LakeStorage, tmp_path: Path, minimum: int, passes: bool) -> None:
    result, _ = validate(
        storage, tmp_path, [table(rows(range(4))), table(rows(range(4, 7)))], StreamChecks(min_records=minimum)
    )

    if passes:
        assert "7 rows" in assert_passes(result, "min_records").detail
    else:
        failed = assert_failed(result, "min_records", None)  # about the whole batch, not one file
        assert f"7 rows, at least {minimum} required" in failed.detail


@pytest.mark.parametrize("policy", ["allow", "fail"])
def test_zero_rows_policy(storage: LakeStorage, tmp_path: Path, policy: str) -> None:
    result, keys = validate(storage, tmp_path, [], StreamChecks(zero_rows=policy))  # the engine writes no part

    assert keys == []
    assert check(result, "row_count").detail == "0 rows, as counted by the engine"
    if policy == "allow":
        assert "empty batch (allow)" in assert_passes(result, "zero_rows").detail
    else:
        assert "empty batch (fail)" in assert_failed(result, "zero_rows", None).detail


@pytest.mark.parametrize(
    ("mode", "policy", "passes", "detail"),
    [
        ("append", None, True, "empty batch (allow, the default)"),
        ("overwrite", None, False, "empty batch (fail, the default for overwrite)"),
        ("overwrite", "allow", True, "empty batch (allow)"),
        ("append", "fail", False, "empty batch (fail)"),
    ],
)
def test_an_empty_overwrite_snapshot_fails_unless_allowed(
    storage: LakeStorage, tmp_path: Path, mode: str, policy: str | None, passes: bool, detail: str
) -> None:
    """Applied, an empty snapshot would empty the silver table: by default that is a failure, not a no-op."""
    result, _ = validate(storage, tmp_path, [], StreamChecks(zero_rows=policy), destination_sync_mode=mode)

    found = assert_passes(result, "zero_rows") if passes else assert_failed(result, "zero_rows", None)
    assert found.detail == detail


def test_rows_present_gives_no_zero_rows_check(storage: LakeStorage, tmp_path: Path) -> None:
    result, _ = validate(storage, tmp_path, [table(rows(range(3)))], StreamChecks(zero_rows="fail"))

    assert result.passed, result.failure
    assert "zero_rows" not in [c.name for c in result.checks]


# -- uniqueness and nulls -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["within a part", "across parts"])
def test_duplicate_primary_key_fails(storage: LakeStorage, tmp_path: Path, where: str) -> None:
    if where == "within a part":
        parts = [table(rows(range(3))), table(rows([3, 4, 4, 5]))]
    else:
        parts = [table(rows(range(4))), table(rows([4, 3]))]
    result, keys = validate(storage, tmp_path, parts)

    failed = assert_failed(result, "primary_key_unique", keys[1])
    assert failed.detail == "1 duplicate row(s) of id"


def test_unique_primary_key_passes(storage: LakeStorage, tmp_path: Path) -> None:
    result, _ = validate(storage, tmp_path, [table(rows(range(4))), table(rows(range(4, 7)))])

    assert assert_passes(result, "primary_key_unique").detail == "0 duplicate row(s) of id"


@pytest.mark.parametrize("nulls", [0, 2])
def test_not_null_decided_from_footer_statistics(storage: LakeStorage, tmp_path: Path, nulls: int) -> None:
    second = rows(range(4, 7)) + [row(7 + n, name=None) for n in range(nulls)]
    result, keys = validate(storage, tmp_path, [table(rows(range(4))), table(second)], StreamChecks(not_null=["name"]))

    if nulls == 0:
        assert assert_passes(result, "not_null(name)").detail == "0 null value(s) (from footer statistics)"
    else:
        failed = assert_failed(result, "not_null(name)", keys[1])
        assert failed.detail == "2 null value(s) (from footer statistics)"


def test_not_null_without_statistics_reads_the_column(storage: LakeStorage, tmp_path: Path) -> None:
    batch = build_batch(storage, tmp_path / "staging", [table(rows(range(4))), table([row(4), row(5, name=None)])])
    keys = [f.key for f in batch.files]
    for key in keys:  # the same parts, written without statistics
        buffer = io.BytesIO()
        pq.write_table(storage.open_parquet(key).read(), buffer, row_group_size=2, write_statistics=False)
        storage.put_bytes(key, buffer.getvalue())
    group = storage.open_parquet(keys[1]).metadata.row_group(0)
    (name,) = [group.column(i) for i in range(group.num_columns) if group.column(i).path_in_schema == "name"]
    assert name.statistics is None

    result = validate_batch(storage, batch, StreamChecks(not_null=["name"]))

    failed = assert_failed(result, "not_null(name)", keys[1])
    assert failed.detail == "1 row(s) with a null value"


def test_unique_column(storage: LakeStorage, tmp_path: Path) -> None:
    checks = StreamChecks(unique=["name"])
    result, _ = validate(storage, tmp_path, [table(rows(range(4))), table(rows(range(4, 7)))], checks)
    assert assert_passes(result, "unique(name)").detail == "0 duplicate row(s) of name"

    parts = [table([*rows(range(3)), row(3, name=LEAK)]), table([row(4, name=LEAK), row(5, name=LEAK), row(6)])]
    result, keys = validate(storage, tmp_path / "bad", parts, checks)

    failed = assert_failed(result, "unique(name)", keys[1])
    assert failed.detail == "2 duplicate row(s) of name"
    assert_no_data(result)


# -- values ---------------------------------------------------------------------------------------


def test_accepted_values(storage: LakeStorage, tmp_path: Path) -> None:
    checks = StreamChecks(accepted_values={"status": ["active", "inactive"]})
    good = [table(rows(range(3))), table([row(3, status="inactive"), row(4, status=None)])]
    result, _ = validate(storage, tmp_path, good, checks)
    assert assert_passes(result, "accepted_values(status)").detail == "0 row(s) outside the accepted values"

    bad = [table(rows(range(3))), table([row(3, status=LEAK), row(4), row(5, status=LEAK)])]
    result, keys = validate(storage, tmp_path / "bad", bad, checks)

    failed = assert_failed(result, "accepted_values(status)", keys[1])
    assert failed.detail == "2 row(s) outside the accepted values"
    assert_no_data(result)


def test_accepted_integers_on_a_number_column_count_rows_instead_of_failing_to_cast(
    storage: LakeStorage, tmp_path: Path
) -> None:
    """amount is float64; casting the data to the values' int64 would fail, quoting the value 1.5."""
    parts = [table([row(1), row(2, amount=1.5), row(3, amount=2.0)])]
    result, keys = validate(storage, tmp_path, parts, StreamChecks(accepted_values={"amount": [1, 2]}))

    failed = assert_failed(result, "accepted_values(amount)", keys[0])
    assert failed.detail == "1 row(s) outside the accepted values"
    assert "1.5" not in (result.failure or "")


@pytest.mark.parametrize(
    ("rule", "bad_amounts"),
    [
        (RangeRule(min=0), [-5.0, -0.5]),
        (RangeRule(max=100), [100.5, 9_999.0]),
        (RangeRule(min=0, max=100), [-1.0, 101.0]),
    ],
    ids=["min only", "max only", "both"],
)
def test_range(storage: LakeStorage, tmp_path: Path, rule: RangeRule, bad_amounts: list[float]) -> None:
    checks = StreamChecks(range={"amount": rule})
    edges = [x for x in (rule.min, rule.max) if x is not None]  # the bounds themselves are inside
    good = [table(rows(range(4))), table([row(4 + i, amount=x) for i, x in enumerate(edges)])]
    result, _ = validate(storage, tmp_path, good, checks)
    assert "0 row(s) outside" in assert_passes(result, "range(amount)").detail

    bad = [table(rows(range(1, 4))), table([row(4 + i, amount=x) for i, x in enumerate(bad_amounts)])]
    result, keys = validate(storage, tmp_path / "bad", bad, checks)

    failed = assert_failed(result, "range(amount)", keys[1])
    assert failed.detail == f"2 row(s) outside [{rule.min}, {rule.max}]"
    assert not any(str(x) in (result.failure or "") for x in bad_amounts)


def test_regex(storage: LakeStorage, tmp_path: Path) -> None:
    checks = StreamChecks(regex={"name": r"^name-\d+$"})
    result, _ = validate(storage, tmp_path, [table(rows(range(4))), table([row(4), row(5, name=None)])], checks)
    assert assert_passes(result, "regex(name)").detail.startswith("0 row(s) not matching")

    bad = [table([row(0, name=f"{LEAK}-0"), row(1)]), table([row(2, name=f"x {LEAK}")])]
    result, keys = validate(storage, tmp_path / "bad", bad, checks)

    failed = assert_failed(result, "regex(name)", keys[0])
    assert failed.detail.startswith("2 row(s) not matching")
    assert_no_data(result)


# -- freshness --------------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def test_freshness_of_extracted_at(storage: LakeStorage, tmp_path: Path) -> None:
    fresh = [table(rows(range(3)), emitted_at=OLD_MS), table(rows(range(3, 5)), emitted_at=now_ms())]
    result, _ = validate(storage, tmp_path, fresh, StreamChecks(freshness=FreshnessRule(max_age="1h")))
    assert "at most 3600 s allowed" in assert_passes(result, "freshness(_airbyte_extracted_at)").detail

    stale = [table(rows(range(3)), emitted_at=OLD_MS)]
    result, _ = validate(storage, tmp_path / "old", stale, StreamChecks(freshness=FreshnessRule(max_age="1s")))

    failed = assert_failed(result, "freshness(_airbyte_extracted_at)", None)  # about the newest value of the batch
    age = int(failed.detail.split()[3])
    assert abs(age - (time.time() - OLD_MS / 1000)) < 60
    assert "at most 1 s allowed" in failed.detail


def test_freshness_of_extracted_at_as_epoch_millis(storage: LakeStorage, tmp_path: Path) -> None:
    """Older destinations store ``_airbyte_extracted_at`` as int64 epoch-ms; freshness reads it as such."""
    parts = []
    for emitted in (OLD_MS, now_ms()):
        part = table(rows(range(2)) if emitted == OLD_MS else rows(range(2, 4)), emitted_at=emitted)
        index = part.schema.get_field_index("_airbyte_extracted_at")
        millis = part.column(index).cast(pa.int64())
        parts.append(part.set_column(index, pa.field("_airbyte_extracted_at", pa.int64(), False), millis))

    result, _ = validate(storage, tmp_path, parts, StreamChecks(freshness=FreshnessRule(max_age="10m")))

    assert "at most 600 s allowed" in assert_passes(result, "freshness(_airbyte_extracted_at)").detail


def test_freshness_of_a_date_time_column(storage: LakeStorage, tmp_path: Path) -> None:
    checks = StreamChecks(freshness=FreshnessRule(column="updated_at", max_age="1d"))
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    fresh = [table([row(0), row(1, updated_at=recent), row(2, updated_at=None)], emitted_at=now_ms())]
    result, _ = validate(storage, tmp_path, fresh, checks)
    assert "at most 86400 s allowed" in assert_passes(result, "freshness(updated_at)").detail

    # Fresh extraction, but the data itself is old: the column decides.
    result, _ = validate(storage, tmp_path / "old", [table(rows(range(3)), emitted_at=now_ms())], checks)

    failed = assert_failed(result, "freshness(updated_at)", None)
    assert int(failed.detail.split()[3]) > 86_400


# -- changes recorded by Airbyte ----------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "passes"), [(None, True), (2, True), (1, False)])
def test_airbyte_changes(storage: LakeStorage, tmp_path: Path, limit: int | None, passes: bool) -> None:
    bad_date = f"{LEAK}-not-a-date"
    parts = [table(rows(range(3))), table([row(3, updated_at=bad_date), row(4), row(5, updated_at=bad_date)])]
    meta = parts[1].column("_airbyte_meta").to_pylist()
    assert [len(m["changes"]) for m in meta] == [1, 0, 1]  # the converter nulled the values and said so
    assert parts[1].column("updated_at").null_count == 2

    result, keys = validate(storage, tmp_path, parts, StreamChecks(max_changes=limit))

    expected = "report only" if limit is None else f"at most {limit}"
    if passes:
        found = assert_passes(result, "airbyte_changes")
        assert found.detail == f"2 row(s) with changes recorded by Airbyte ({expected})"
        assert found.file == keys[1]
    else:
        failed = assert_failed(result, "airbyte_changes", keys[1])
        assert failed.detail == f"2 row(s) with changes recorded by Airbyte ({expected})"
    assert_no_data(result)


def test_no_changes_pass_with_a_zero_limit(storage: LakeStorage, tmp_path: Path) -> None:
    result, _ = validate(storage, tmp_path, [table(rows(range(3)))], StreamChecks(max_changes=0))

    found = assert_passes(result, "airbyte_changes")
    assert found.detail.startswith("0 row(s)")
    assert found.file is None


# -- schema drift ---------------------------------------------------------------------------------------


def drifted(kind: str) -> tuple[list[dict[str, Any]], str]:
    """The schema of an earlier batch that differs from ``table``'s in one way, and how the detail says it."""
    current = batch_schema([("k", pq.ParquetFile(io.BytesIO(_parquet_bytes(table(rows([0]))))))])
    if kind == "added":  # the earlier batch had no status column
        return [c for c in current if c["name"] != "status"], "added: status"
    if kind == "removed":
        return [*current, {"name": "email", "type": "string", "nullable": True}], "removed: email"
    return [c | {"type": "int64"} if c["name"] == "amount" else c for c in current], "retyped: amount int64 -> double"


def _parquet_bytes(data: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(data, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("policy", ["fail", "warn", "allow"])
@pytest.mark.parametrize("kind", ["added", "removed", "retyped"])
def test_schema_drift(storage: LakeStorage, tmp_path: Path, kind: str, policy: str) -> None:
    previous, says = drifted(kind)
    parts = [table(rows(range(3))), table(rows(range(3, 5)))]

    result, keys = validate(storage, tmp_path, parts, StreamChecks(schema_drift=policy), previous_schema=previous)

    if policy == "fail":
        failed = assert_failed(result, "schema_drift", keys[0])
        assert failed.detail == f"{says} (policy fail)"
        assert check(result, "schema_drift") is result.checks[-1]  # rules do not run on doubtful data
    else:
        found = assert_passes(result, "schema_drift")
        assert found.detail == f"{says} (policy {policy})"
        assert "primary_key_unique" in [c.name for c in result.checks]


def test_same_schema_is_no_drift(storage: LakeStorage, tmp_path: Path) -> None:
    batch = build_batch(storage, tmp_path / "staging", [table(rows(range(3)))])
    previous = batch_schema([(f.key, storage.open_parquet(f.key)) for f in batch.files])
    assert {"name": "amount", "type": "double", "nullable": True} in previous

    result = validate_batch(storage, batch, StreamChecks(schema_drift="fail"), previous)

    assert assert_passes(result, "schema_drift").detail == "same columns and types as the last validated batch"


# -- legacy destinations ---------------------------------------------------------------------------------


def legacy(data: pa.Table, emitted_type: pa.DataType) -> pa.Table:
    """The same rows as an Airbyte destination before 1.0 writes them: ab_id, emitted_at, data, no meta."""
    emitted = data.column("_airbyte_extracted_at")
    emitted = emitted.cast(pa.int64()) if emitted_type == pa.int64() else emitted
    ids = pa.array([f"ab-{i}" for i in range(data.num_rows)], pa.string())
    rest = data.drop_columns(["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id"])
    return pa.Table.from_arrays(
        [ids, emitted, *rest.columns], names=["_airbyte_ab_id", "_airbyte_emitted_at", *rest.column_names]
    )


@pytest.mark.parametrize("emitted_type", [pa.timestamp("ms", tz="UTC"), pa.int64()], ids=["timestamp", "int64"])
def test_legacy_column_set(storage: LakeStorage, tmp_path: Path, emitted_type: pa.DataType) -> None:
    parts = [legacy(table(rows(range(4))), emitted_type), legacy(table(rows(range(4, 7))), emitted_type)]
    assert "_airbyte_meta" not in parts[0].column_names
    checks = StreamChecks(freshness=FreshnessRule(column="_airbyte_emitted_at", max_age="36500d"), max_changes=0)

    result, _ = validate(storage, tmp_path, parts, checks)

    assert check(result, "airbyte_columns").passed
    assert "legacy" in assert_passes(result, "sync_id").detail
    assert check(result, "row_count").detail == "7 rows, as counted by the engine"
    assert check(result, "airbyte_changes").detail == "not recorded by this destination version"
    assert check(result, "freshness(_airbyte_emitted_at)").passed

    for obj in storage.list(stream_prefix(SOURCE, STREAM)):
        storage.delete(obj.key)
    batch = build_batch(storage, tmp_path / "miscounted", parts, records=8)
    result = validate_batch(storage, batch, checks)
    assert "files hold 7 rows, the engine counted 8" in assert_failed(result, "row_count", batch.files[-1].key).detail


# -- missing columns -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checks", "name"),
    [
        (StreamChecks(not_null=["nope"]), "not_null(nope)"),
        (StreamChecks(unique=["nope"]), "unique(nope)"),
        (StreamChecks(accepted_values={"nope": ["a"]}), "accepted_values(nope)"),
        (StreamChecks(range={"nope": RangeRule(min=0)}), "range(nope)"),
        (StreamChecks(regex={"nope": "^a"}), "regex(nope)"),
        (StreamChecks(freshness=FreshnessRule(column="nope", max_age="1d")), "freshness(nope)"),
    ],
    ids=["not_null", "unique", "accepted_values", "range", "regex", "freshness"],
)
def test_rule_on_a_missing_column_fails(storage: LakeStorage, tmp_path: Path, checks: StreamChecks, name: str) -> None:
    result, keys = validate(storage, tmp_path, [table(rows(range(3))), table(rows(range(3, 5)))], checks)

    failed = assert_failed(result, name, keys[0])
    assert failed.detail == "column nope is missing"


# -- the catalog ---------------------------------------------------------------------------------------------

EMBEDDED = """sources:
  - name: shop
    connector: {package: airbyte-source-faker, version: "7.2.1"}
    streams:
"""


def test_catalog_checks_parse_into_stream_checks() -> None:
    text = (
        EMBEDDED
        + """      - name: users
        checks:
          min_records: 10
          not_null: [email]
          unique: [email]
          accepted_values: {status: [active, inactive], tier: [1, 2]}
          range: {age: {min: 0, max: 130}, score: {max: 1.5}}
          regex: {email: '^[^@]+@[^@]+$'}
          freshness: {max_age: 6h}
          max_changes: 0
          schema_drift: fail
          zero_rows: fail
      - name: orders
"""
    )
    (source,) = parse_catalog(text, "c.yaml", {}).sources

    users = source.checks_for("users")
    assert users.min_records == 10
    assert users.not_null == ["email"] and users.unique == ["email"]
    assert users.accepted_values == {"status": ["active", "inactive"], "tier": [1, 2]}
    assert users.range == {"age": RangeRule(min=0, max=130), "score": RangeRule(max=1.5)}
    assert users.regex == {"email": "^[^@]+@[^@]+$"}
    assert users.freshness == FreshnessRule(column="_airbyte_extracted_at", max_age="6h")
    assert users.freshness.seconds == 6 * 3600
    assert (users.max_changes, users.schema_drift, users.zero_rows) == (0, "fail", "fail")
    # Streams without checks, and streams the catalog does not list, get the defaults.
    assert source.checks_for("orders") == StreamChecks() == source.checks_for("unlisted")
    assert (StreamChecks().schema_drift, StreamChecks().zero_rows, StreamChecks().max_changes) == (
        "warn",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("checks", "says"),
    [
        ("{regex: {email: '(unclosed'}}", "does not compile"),
        ("{freshness: {max_age: 2 hours}}", "max_age"),
        ("{not_nul: [email]}", "not_nul"),
        ("{range: {age: {minimum: 0}}}", "minimum"),
        ("{schema_drift: ignore}", "schema_drift"),
        ("{min_records: -1}", "min_records"),
    ],
    ids=["bad regex", "bad max_age", "unknown check", "unknown range bound", "unknown drift policy", "negative"],
)
def test_bad_checks_are_config_errors(checks: str, says: str) -> None:
    text = EMBEDDED + f"      - name: users\n        checks: {checks}\n"

    with pytest.raises(ConfigError, match=r"c\.yaml") as error:
        parse_catalog(text, "c.yaml", {})

    assert says in str(error.value)
    assert "\n" not in str(error.value)


AIRBYTE_SOURCE = """sources:
  - name: crm
    connection_id: 2c1f0b6e
    streams:
      - name: users
"""


def test_airbyte_source_streams_take_checks() -> None:
    (source,) = parse_catalog(
        AIRBYTE_SOURCE + "        checks: {not_null: [id], max_changes: 3}\n", "c.yaml", {}
    ).sources

    assert source.connection_id == "2c1f0b6e"
    assert source.checks_for("users") == StreamChecks(not_null=["id"], max_changes=3)


def test_airbyte_source_streams_refuse_sync_settings() -> None:
    with pytest.raises(ConfigError, match="take only 'name' and 'checks'"):
        parse_catalog(AIRBYTE_SOURCE + "        sync_mode: full_refresh\n", "c.yaml", {})


# -- footer statistics decide, or the data is read -----------------------------------------------------------

BOTH = pytest.mark.parametrize("statistics", [True, False], ids=["footer statistics", "data read"])


@BOTH
def test_range_with_and_without_statistics(storage: LakeStorage, tmp_path: Path, statistics: bool) -> None:
    checks = StreamChecks(range={"amount": RangeRule(min=0, max=100)})
    good = [table(rows(range(4))), table([row(4, amount=100.0), row(5, amount=None)])]
    result, _ = validate(storage, tmp_path, good, checks, statistics=statistics)
    assert assert_passes(result, "range(amount)").detail == "0 row(s) outside [0.0, 100.0]"

    bad = [table(rows(range(4))), table([row(4, amount=-1.0), row(5), row(6, amount=100.5)])]
    result, keys = validate(storage, tmp_path / "bad", bad, checks, statistics=statistics)

    assert assert_failed(result, "range(amount)", keys[1]).detail == "2 row(s) outside [0.0, 100.0]"


@pytest.mark.parametrize("column", ["amount", "updated_at"])
def test_range_and_freshness_decided_by_statistics_read_no_data(
    storage: LakeStorage, tmp_path: Path, column: str
) -> None:
    """Statistics inside the bounds (range) or a max (freshness) decide: corrupt pages of the column, which no
    other check reads, go unnoticed, proving they were not read; without statistics they are read and fail."""
    checks = (
        StreamChecks(range={"amount": RangeRule(min=0, max=100)})
        if column == "amount"
        else StreamChecks(freshness=FreshnessRule(column="updated_at", max_age="36500d"))
    )
    name = "range(amount)" if column == "amount" else "freshness(updated_at)"
    for statistics in (True, False):
        for obj in storage.list(stream_prefix(SOURCE, STREAM)):
            storage.delete(obj.key)
        batch = build_batch(
            storage, tmp_path / f"staging-{statistics}", [table(rows(range(4))), table(rows(range(4, 7)))]
        )
        if not statistics:
            without_statistics(storage, [f.key for f in batch.files])
        corrupt_column(storage, batch.files[1].key, column)

        result = validate_batch(storage, batch, checks)

        if statistics:
            assert assert_passes(result, name)
        else:
            failed = assert_failed(result, name, batch.files[1].key)
            assert "row group 0 cannot be read" in failed.detail


@BOTH
def test_freshness_with_and_without_statistics(storage: LakeStorage, tmp_path: Path, statistics: bool) -> None:
    checks = StreamChecks(freshness=FreshnessRule(column="updated_at", max_age="1d"))
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    parts = [table(rows(range(3))), table([row(3, updated_at=recent), row(4, updated_at=None)])]
    result, _ = validate(storage, tmp_path, parts, checks, statistics=statistics)
    age = int(assert_passes(result, "freshness(updated_at)").detail.split()[3])
    assert 7100 < age < 7400

    nulls = [table([row(0, updated_at=None)])]
    result, _ = validate(storage, tmp_path / "nulls", nulls, checks, statistics=statistics)
    assert assert_failed(result, "freshness(updated_at)", None).detail == "no timestamp value to judge freshness by"


@BOTH
def test_not_null_of_the_primary_key_is_read_once_and_reported_under_both_names(
    storage: LakeStorage, tmp_path: Path, statistics: bool
) -> None:
    checks = StreamChecks(not_null=["id", "name"])
    result, _ = validate(storage, tmp_path, [table(rows(range(4)))], checks, statistics=statistics)

    assert assert_passes(result, "primary_key_not_null(id)").detail == "id is never null"
    assert check(result, "not_null(id)").passed
    assert check(result, "not_null(name)").passed


# -- uniqueness: hashes, buckets, confirmation --------------------------------------------------------------------


def wide(ids: list[int | None], names: list[str | None], amounts: list[float] | None = None) -> pa.Table:
    """A part of many rows in the stream's Airbyte format, built column-wise (fast for tens of thousands)."""
    count = len(ids)
    no_changes = pa.ListArray.from_arrays(
        pa.array([0] * (count + 1), pa.int32()), pa.array([], AIRBYTE_META.field("changes").type.value_type)
    )
    sync_ids = pa.array([SYNC_ID] * count, pa.int64())
    columns = {
        "_airbyte_raw_id": pa.array([f"raw-{i}" for i in ids]),
        "_airbyte_extracted_at": pa.array([OLD_MS] * count, pa.int64()).cast(pa.timestamp("ms", "UTC")),
        "_airbyte_meta": pa.StructArray.from_arrays([sync_ids, no_changes], fields=list(AIRBYTE_META)),
        "_airbyte_generation_id": pa.array([0] * count, pa.int64()),
        "id": pa.array(ids, pa.int64()),
        "name": pa.array(names, pa.string()),
        "status": pa.array(["active"] * count),
        "amount": pa.array(amounts if amounts is not None else [float(i or 0) for i in ids], pa.float64()),
        "updated_at": pa.array([OLD_MS * 1000] * count, pa.int64()).cast(pa.timestamp("us", "UTC")),
    }
    return pa.Table.from_pydict(columns, schema=COLUMNS.arrow_schema)


@BOTH
def test_uniqueness_over_many_rows_uses_buckets_and_counts_exactly(
    storage: LakeStorage, tmp_path: Path, statistics: bool
) -> None:
    """60,000 rows: the hashes are split into buckets; duplicates within and across parts are counted exactly."""
    size = 20_000
    parts = [
        wide(list(range(n * size, (n + 1) * size)), [f"n{i}" for i in range(n * size, (n + 1) * size)])
        for n in range(3)
    ]
    assert uniqueness.Unique("u", ["name"], 3 * size).bits == 2
    checks = StreamChecks(unique=["name"])
    result, _ = validate(storage, tmp_path, parts, checks, statistics=statistics, row_group_rows=7_000)
    assert assert_passes(result, "unique(name)").detail == "0 duplicate row(s) of name"
    assert check(result, "primary_key_unique").detail == "0 duplicate row(s) of id"

    names = [[f"n{i}" for i in range(n * size, (n + 1) * size)] for n in range(3)]
    names[0][7] = names[1][5] = names[2][9] = f"{LEAK}-7"  # a value of part 0 repeated in parts 1 and 2
    names[2][11] = "n30000"  # a value of part 1 repeated in part 2
    names[0][3] = None  # nulls are not counted
    names[2][12] = None
    parts = [wide(list(range(n * size, (n + 1) * size)), names[n]) for n in range(3)]
    result, keys = validate(storage, tmp_path / "bad", parts, checks, statistics=statistics, row_group_rows=7_000)

    failed = assert_failed(result, "unique(name)", keys[1])
    assert failed.detail == "3 duplicate row(s) of name"
    assert_no_data(result)


def test_long_values_sharing_their_ends_are_told_apart(storage: LakeStorage, tmp_path: Path) -> None:
    """Values longer than the hashed 64+64 bytes that differ only in the middle hash alike: confirmed exactly."""
    middle = ["x" * 80 + letter + "y" * 80 for letter in "abc"]
    parts = [table([row(0, name=middle[0]), row(1, name=middle[1])]), table([row(2, name=middle[2])])]
    result, _ = validate(storage, tmp_path, parts, StreamChecks(unique=["name"]))
    assert assert_passes(result, "unique(name)").detail == "0 duplicate row(s) of name"

    parts = [table([row(0, name=middle[0]), row(1, name=middle[1])]), table([row(2, name=middle[0])])]
    result, keys = validate(storage, tmp_path / "bad", parts, StreamChecks(unique=["name"]))
    assert assert_failed(result, "unique(name)", keys[1]).detail == "1 duplicate row(s) of name"


def test_every_hash_colliding_still_gives_exact_counts(
    storage: LakeStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashes only select candidates: even if all rows hashed alike, the values decide."""
    monkeypatch.setattr(uniqueness, "_hash_values", lambda values: pa.repeat(pa.scalar(42, pa.uint64()), len(values)))
    parts = [table(rows(range(4))), table(rows(range(4, 7)))]
    result, _ = validate(storage, tmp_path, parts, StreamChecks(unique=["name"]))
    assert assert_passes(result, "unique(name)").detail == "0 duplicate row(s) of name"

    parts = [table(rows(range(4))), table([row(4), row(5, name="name-1"), row(6, name="name-1")])]
    result, keys = validate(storage, tmp_path / "bad", parts, StreamChecks(unique=["name"]))
    assert assert_failed(result, "unique(name)", keys[1]).detail == "2 duplicate row(s) of name"


def test_composite_primary_key(storage: LakeStorage, tmp_path: Path) -> None:
    parts = [table([row(1, name="a"), row(1, name="b")]), table([row(2, name="a")])]
    result, _ = validate(storage, tmp_path, parts, primary_key=[["id"], ["name"]])
    assert assert_passes(result, "primary_key_unique").detail == "0 duplicate row(s) of id, name"

    parts = [table([row(1, name="a"), row(1, name="b")]), table([row(1, name="a")])]
    result, keys = validate(storage, tmp_path / "bad", parts, primary_key=[["id"], ["name"]])
    assert assert_failed(result, "primary_key_unique", keys[1]).detail == "1 duplicate row(s) of id, name"


@pytest.mark.parametrize("column", ["amount", "updated_at", "status"])
def test_unique_on_numbers_timestamps_and_dictionary_strings(storage: LakeStorage, tmp_path: Path, column: str) -> None:
    values = {"amount": [1.5, 2.5, 1.5], "updated_at": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"] * 2}
    values["status"] = ["active", "inactive", "active"]
    bad = [table([row(i, **{column: v}) for i, v in enumerate(values[column])])]
    result, keys = validate(storage, tmp_path, bad, StreamChecks(unique=[column]))

    duplicates = 2 if column == "updated_at" else 1
    failed = assert_failed(result, f"unique({column})", keys[0])
    assert failed.detail == f"{duplicates} duplicate row(s) of {column}"


def test_unique_on_a_struct_column_compares_its_fields(storage: LakeStorage, tmp_path: Path) -> None:

    def with_address(part: pa.Table, cities: list[str]) -> pa.Table:
        return part.append_column("address", pa.array([{"city": c, "zip": 1} for c in cities]))

    parts = [with_address(table(rows(range(2))), ["a", "b"]), with_address(table(rows(range(2, 4))), ["c", "d"])]
    result, _ = validate(storage, tmp_path, parts, StreamChecks(unique=["address"]))
    assert assert_passes(result, "unique(address)").detail == "0 duplicate row(s) of address"

    parts = [with_address(table(rows(range(2))), ["a", "b"]), with_address(table(rows(range(2, 4))), ["c", "a"])]
    result, keys = validate(storage, tmp_path / "bad", parts, StreamChecks(unique=["address"]))
    assert assert_failed(result, "unique(address)", keys[1]).detail == "1 duplicate row(s) of address"


def test_accepted_values_and_regex_on_one_column(storage: LakeStorage, tmp_path: Path) -> None:
    """The column is read once, plain (regex needs the values), for both rules."""
    checks = StreamChecks(accepted_values={"status": ["active"]}, regex={"status": "^act"})
    parts = [table(rows(range(3))), table([row(3, status=LEAK), row(4, status="inactive")])]

    result, keys = validate(storage, tmp_path, parts, checks)

    assert check(result, "accepted_values(status)").detail == "2 row(s) outside the accepted values"
    assert check(result, "regex(status)").detail == "2 row(s) not matching '^act'"
    assert check(result, "regex(status)").file == keys[1]
    assert_no_data(result)


def test_unique_on_a_list_column_fails_clearly(storage: LakeStorage, tmp_path: Path) -> None:
    """Lists have neither a hash nor an exact grouping here: a failed check that says so, not an exception."""
    parts = [table(rows(range(2))).append_column("tags", pa.array([["a"], ["b"]]))]

    result, _ = validate(storage, tmp_path, parts, StreamChecks(unique=["tags"]))

    failed = assert_failed(result, "unique(tags)", None)
    assert failed.detail == "values of type list<element: string> cannot be compared for uniqueness"


def test_large_row_groups_are_read_in_batches(
    storage: LakeStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row group larger than a batch is read batch by batch (memory stays bounded); results are the same."""
    monkeypatch.setattr(scan, "_BATCH_ROWS", 1_000)
    monkeypatch.setattr(scan, "_RUN_ROWS", 1)  # every row group its own unit
    pieces: list[int] = []
    real_pieces = scan._pieces

    def spy(*args: Any) -> Any:
        for piece, part in real_pieces(*args):
            pieces.append(part.num_rows)
            yield piece, part

    monkeypatch.setattr(scan, "_pieces", spy)
    size = 20_000
    names = [[f"n{i}" for i in range(n * size, (n + 1) * size)] for n in range(2)]
    names[0][100] = names[1][19_999] = f"{LEAK}-1"  # one duplicate, its second occurrence in part 1
    names[1][500] = None
    parts = [wide(list(range(n * size, (n + 1) * size)), names[n]) for n in range(2)]
    checks = StreamChecks(unique=["name"], not_null=["name"])

    result, keys = validate(storage, tmp_path, parts, checks, statistics=False, row_group_rows=7_000)

    assert pieces and max(pieces) == 1_000
    unique, nulls = check(result, "unique(name)"), check(result, "not_null(name)")
    assert (unique.passed, unique.detail, unique.file) == (False, "1 duplicate row(s) of name", keys[1])
    assert (nulls.passed, nulls.detail, nulls.file) == (False, "1 row(s) with a null value", keys[1])
    assert check(result, "primary_key_unique").passed
    assert_no_data(result)

    ids: list[int | None] = list(range(size, 2 * size))
    ids[15_000] = None  # row group 2 of part 1 (rows 14,000-20,999)
    parts = [parts[0], wide(ids, names[1])]
    result, keys = validate(storage, tmp_path / "nulls", parts, checks, statistics=False, row_group_rows=7_000)

    assert assert_failed(result, "primary_key_not_null(id)", keys[1]).detail == "1 null value(s) in row group 2"
