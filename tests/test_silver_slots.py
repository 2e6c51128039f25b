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
