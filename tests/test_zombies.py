"""deployments.zombies: the automation that sets a run Crashed once its process stopped sending heartbeats.

Registered on Prefect's test server here; tests/test_stack.py kills a worker mid-run and sees it act.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prefect.client.schemas.objects import StateType
from prefect.events.schemas.automations import Posture
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from deployments.zombies import ZOMBIE_AUTOMATION, ensure_zombie_automation, zombie_automation

pytestmark = pytest.mark.usefixtures("prefect_server")


def _client() -> Any:
    from prefect import get_client

    return get_client(sync_client=True)


@pytest.fixture(autouse=True)
def _no_zombie_automation() -> None:
    with _client() as client:
        for automation in client.read_automations_by_name(ZOMBIE_AUTOMATION):
            client.delete_automation(automation.id)


def test_the_automation_crashes_our_runs_silent_for_three_heartbeats() -> None:
    automation = zombie_automation(30)
    trigger = automation.trigger
    assert (trigger.posture, trigger.within, trigger.threshold) == (Posture.Proactive, timedelta(seconds=90), 1)
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {
        "prefect.flow-run.heartbeat",
        "prefect.flow-run.Completed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Cancelled",
        "prefect.flow-run.Crashed",
    }
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.match_related.model_dump() == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": ["bronze-ingest", "silver-merge"],
    }
    (action,) = automation.actions
    assert (action.type, action.state) == ("change-flow-run-state", StateType.CRASHED)
    assert action.message == "no heartbeat for 90 s: the flow run's process is gone (worker stopped?)"


def test_ensure_creates_once_then_keeps_then_follows_the_heartbeat_setting() -> None:
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}), _client() as client:
        assert (
            ensure_zombie_automation(client)
            == f"automation {ZOMBIE_AUTOMATION!r}: created (after 90 s without a heartbeat)"
        )
        assert (
            ensure_zombie_automation(client)
            == f"automation {ZOMBIE_AUTOMATION!r}: unchanged (after 90 s without a heartbeat)"
        )
        (stored,) = client.read_automations_by_name(ZOMBIE_AUTOMATION)
        assert stored.trigger.within == timedelta(seconds=90) and stored.enabled
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60}), _client() as client:
        assert (
            ensure_zombie_automation(client)
            == f"automation {ZOMBIE_AUTOMATION!r}: updated (after 180 s without a heartbeat)"
        )
        (updated,) = client.read_automations_by_name(ZOMBIE_AUTOMATION)
        assert updated.id == stored.id and updated.trigger.within == timedelta(seconds=180)


def test_without_heartbeats_nothing_is_set_up() -> None:
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), _client() as client:
        assert (
            ensure_zombie_automation(client)
            == f"automation {ZOMBIE_AUTOMATION!r}: not set up (flow run heartbeats are off)"
        )
        assert client.read_automations_by_name(ZOMBIE_AUTOMATION) == []
