"""What a run shows people, computed without Prefect: names, tags, links, the failure message, the failing batch's
check table, the one-line parameter errors, and the event that starts one silver run per bronze run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.keys import BatchKey
from lakehouse_ingest.runs import naming
from lakehouse_ingest.runs.links import console_url, location_markdown, location_url
from lakehouse_ingest.runs.parameters import BronzeParameters, RevalidateParameters, SilverParameters, checked
from lakehouse_ingest.runs.silver_runs import EVENT_BATCHES_VALIDATED, batches_event
from lakehouse_ingest.runs.status import StreamReport, StreamStatus, source_report
from lakehouse_ingest.runs.summary import check_rows, failed_checks_detail, failure_message, links_markdown, locate

CHECKS = [
    CheckResult("files_listed", True, "1 file"),
    CheckResult("min_records", False, "30 rows, at least 5000 required"),
    CheckResult("accepted_values(gender)", False, "30 row(s) outside the accepted values", "airbyte/f/u/1_0.parquet"),
]


def test_run_names_say_what_ran_and_when() -> None:
    due = datetime(2026, 12, 7, 10, 0, 42, tzinfo=UTC)
    assert naming.bronze_run_name("faker", ["faker"], due) == "faker-2026-12-07T10:00"
    assert naming.bronze_run_name(None, ["a", "b"], due) == "a+b-2026-12-07T10:00"
    assert naming.bronze_run_name(None, None, due) == "all-2026-12-07T10:00"
    one = [BatchKey("faker", "users", 17)]
    assert naming.silver_run_name(one) == "silver-faker.users-17"
    sync = [BatchKey("faker", s, 17) for s in ("users", "products")]
    assert naming.silver_run_name(sync) == "silver-faker-17"
    assert naming.silver_run_name([*sync, BatchKey("faker", "users", 18)]) == "silver-faker-17..18"
    assert naming.silver_run_name([], ["faker"]) == "silver-faker-pending"
    assert naming.run_tags(["faker", "faker"], [("faker", "users")]) == ["source:faker", "stream:faker.users"]
    assert naming.artifact_key("bronze-checks", "Shop_DB", "Order Items") == "bronze-checks-shop-db-order-items"
    assert naming.source_limit_name("a&b/c") == "silver-source:a_b_c"


def test_links_open_in_the_console_or_are_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    console = "http://localhost:9001"
    prefix = "s3://bronze/lake/airbyte/faker/Order Items/"
    assert (
        location_url(prefix, console)
        == "http://localhost:9001/browser/bronze/lake%2Fairbyte%2Ffaker%2FOrder%20Items%2F"
    )
    assert location_url("s3://silver/faker/users", console, folder=True).endswith("/browser/silver/faker%2Fusers%2F")
    assert location_url(prefix, None) is None and location_url("/tmp/lake/x", console) is None
    assert location_markdown("/tmp/lake/x", console) == "`/tmp/lake/x`"
    assert location_markdown("s3://b/k", None) == "`s3://b/k`"
    assert location_markdown("s3://b/k_1", console) == r"[s3://b/k\_1](http://localhost:9001/browser/b/k_1)"
    monkeypatch.setenv("LAKE_CONSOLE_URL", "http://minio.local:9001/")
    assert console_url() == "http://minio.local:9001"
    monkeypatch.setenv("LAKE_CONSOLE_URL", "minio.local:9001")  # not an absolute URL: no links rather than bad ones
    assert console_url() is None


def test_links_markdown_never_holds_a_relative_link() -> None:
    reports = [StreamReport("faker", "users", StreamStatus.HANDED_OFF)]
    locate(reports, "/tmp/lake/bronze", "s3://silver")
    local = links_markdown(reports, "http://console:9001")
    assert "`/tmp/lake/bronze/airbyte/faker/users/`" in local and "](/" not in local
    assert "[s3://silver/faker/users](http://console:9001/browser/silver/faker%2Fusers%2F)" in local
    plain = links_markdown(reports, None)
    assert "](" not in plain and "LAKE_CONSOLE_URL" in plain


def test_failure_message_lists_every_failed_check_of_every_stream_once() -> None:
    users = StreamReport("faker", "users", StreamStatus.FAILED_VALIDATION, detail=failed_checks_detail(CHECKS))
    ok = StreamReport("faker", "products", StreamStatus.HANDED_OFF, detail="m.json")
    down = source_report("crm", StreamStatus.SYNC_FAILED, "crm: connector read failed (exit 1): boom")
    message = failure_message([users, ok, down])
    assert message.startswith("2 of 3 stream batch(es) failed: faker.users failed validation: ")
    assert message.count("faker.users") == 1 and "faker.products" not in message
    assert "check 'min_records' failed: 30 rows, at least 5000 required" in message
    assert "check 'accepted_values(gender)' failed in airbyte/f/u/1_0.parquet: 30 row(s)" in message
    assert message.endswith(" | crm sync failed: connector read failed (exit 1): boom")
    assert "\n" not in message


def test_the_table_row_starts_with_status_and_checks_and_the_check_table_with_failures() -> None:
    row = StreamReport("faker", "users", StreamStatus.FAILED_VALIDATION, checks="1/3", bronze="b", silver="s").as_row()
    assert list(row)[:5] == ["status", "checks", "source", "stream", "detail"]
    assert row["status"] == "failed_validation" and "manifest" not in row
    rows = check_rows(CHECKS)
    assert [r["check"] for r in rows] == ["min_records", "accepted_values(gender)", "files_listed"]
    assert rows[1] == {
        "check": "accepted_values(gender)",
        "passed": False,
        "detail": "30 row(s) outside the accepted values",
        "file": "airbyte/f/u/1_0.parquet",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"force": "maybe"},
            "parameter 'force': input should be a valid boolean, unable to interpret input (got 'maybe')",
        ),
        ({"sources": 3}, "parameter 'sources': input should be a valid list (got 3)"),
        ({"sourcs": ["faker"]}, "parameter 'sourcs': extra inputs are not permitted (got ['faker'])"),
        ({"bronze": ["a"]}, "parameter 'bronze': input should be a valid string (got ['a'])"),
    ],
)
def test_a_bad_parameter_is_one_line_naming_it(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        checked(BronzeParameters, **values)
    assert str(info.value) == message


def test_parameters_as_people_type_them() -> None:
    given = checked(BronzeParameters, sources="faker", catalog=" ", bronze="", silver=None, force="true")
    assert given == BronzeParameters(sources=["faker"], force=True)
    assert checked(BronzeParameters, sources=[]).sources is None
    assert checked(SilverParameters, manifests=["m.json", ""]).manifests == ["m.json"]
    assert checked(RevalidateParameters, batches="faker/users/1").batches == ["faker/users/1"]


def test_one_event_per_source_carries_all_its_manifests() -> None:
    manifests = [f"s3://bronze/airbyte/faker/{s}/_manifests/17.json" for s in ("users", "products")]
    event = batches_event("faker", manifests, "s3://bronze", "s3://silver")
    assert event["event"] == EVENT_BATCHES_VALIDATED
    assert event["resource"]["prefect.resource.id"] == "bronze.source.faker"
    assert event["payload"]["manifests"] == manifests
    assert event["payload"]["streams"] == ["products", "users"] and event["payload"]["sync_ids"] == [17]
    assert event["payload"]["silver_root"] == "s3://silver"
