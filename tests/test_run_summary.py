"""The run's failure message: every failed stream once, named once."""

from __future__ import annotations

from lakehouse_ingest.runs.status import StreamReport, StreamStatus
from lakehouse_ingest.runs.summary import failure_message


def test_failure_message_names_each_failed_stream_once() -> None:
    reports = [
        StreamReport("shop", "users", StreamStatus.FAILED_VALIDATION, detail="shop.users: check 'readable' failed"),
        StreamReport("shop", "orders", StreamStatus.HANDED_OFF, detail="ok"),
        StreamReport("shop", "carts", StreamStatus.ERROR, detail="OSError: timed out"),
    ]
    assert failure_message(reports) == "shop.users: check 'readable' failed; shop.carts: OSError: timed out"
