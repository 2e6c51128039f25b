"""A silver run waits a bounded time for its source's slot: a slot a killed run left taken does not block silver."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from prefect import flow, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

import tasks.silver
from lakehouse_ingest.runs.naming import source_limit_name

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_a_slot_left_taken_is_waited_for_then_merged_without(caplog: pytest.LogCaptureFixture) -> None:
    source = f"slots_{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:  # what a run killed while holding it leaves: one slot taken, for good
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=source_limit_name(source), limit=1, active_slots=1)
        )

    @flow
    def merging() -> float:
        started = time.monotonic()
        with tasks.silver.source_slots([source], wait=2.0):
            return time.monotonic() - started

    with caplog.at_level(logging.WARNING):
        waited = merging()
    assert 2.0 <= waited < 30, waited
    assert any(
        f"silver slot(s) {source_limit_name(source)} still taken after 2 s" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_server_refusing_the_slots_does_not_fail_silver(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A busy Prefect server answered 503 to acquiring 100 sources' slots at once (bench/airbyte_syncs.py): the
    run merged nothing and failed with a 100-name message. The merge goes on without the slots, with one line."""
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

    sources = [f"busy_{uuid.uuid4().hex[:6]}_{i}" for i in range(5)]

    def refused(names: list[str], **_: object) -> None:
        raise ConcurrencySlotAcquisitionError(
            f"Unable to acquire concurrency slots on {names}: 503 Service Unavailable"
        )

    monkeypatch.setattr(tasks.silver, "concurrency", refused)
    merged = []

    @flow
    def merging() -> None:
        with tasks.silver.source_slots(sources, wait=2.0):
            merged.append(True)

    with caplog.at_level(logging.WARNING):
        merging()
    assert merged == [True]
    (line,) = [r.getMessage() for r in caplog.records if "could not be acquired" in r.getMessage()]
    names = sorted(source_limit_name(s) for s in sources)
    assert f"{names[0]}, {names[1]}, {names[2]} and 2 more could not be acquired (503 Service Unavailable)" in line
