"""The run's failure message: every failed stream once, named once."""

from __future__ import annotations

from lakehouse_ingest.runs.status import StreamReport, StreamStatus, source_report
from lakehouse_ingest.runs.summary import failure_message


def test_failure_message_names_each_failed_stream_once() -> None:
    reports = [
        StreamReport("shop", "users", StreamStatus.FAILED_VALIDATION, detail="shop.users: check 'readable' failed"),
        StreamReport("shop", "orders", StreamStatus.HANDED_OFF, detail="ok"),
        StreamReport("shop", "carts", StreamStatus.ERROR, detail="OSError: timed out"),
    ]
    assert failure_message(reports) == "shop.users: check 'readable' failed; shop.carts: OSError: timed out"


def test_a_whole_source_failure_that_names_its_source_is_not_prefixed_again() -> None:
    reports = [
        source_report("faker", StreamStatus.SYNC_FAILED, "faker: connector read failed (exit 1): token expired"),
        source_report("shop", StreamStatus.PLAN_FAILED, "the connection is inactive, not active"),
    ]
    assert failure_message(reports) == (
        "faker: connector read failed (exit 1): token expired; shop.*: the connection is inactive, not active"
    )
