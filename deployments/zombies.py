"""Flow runs whose process died (a worker container killed mid-run) end Crashed instead of Running forever.

A flow run's process sends the event ``prefect.flow-run.heartbeat`` at its start and then every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (Prefect's default 180; the compose stack sets 30). When a run of
this project's flows sends neither another heartbeat nor a final state within ``MISSED_HEARTBEATS`` intervals,
the automation made here sets it Crashed (Prefect's documented pattern for "zombie" runs, scoped to the bronze and
silver flows). Crashed also releases the run's deployment concurrency slot: without this, a dead bronze run keeps
its deployment's only slot, and every next run of it is cancelled ("Deployment concurrency limit reached") until
the slot's lease runs out, while the dead run shows Running in the UI for good.

``register`` calls :func:`ensure_zombie_automation` (create, or update in place by name: idempotent), which says
created, updated or unchanged like every other object ``register`` keeps.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.settings import get_current_settings

from deployments.build import BRONZE_FLOW, SILVER_FLOW

ZOMBIE_AUTOMATION = "lakehouse: crash flow runs that stopped sending heartbeats"
MISSED_HEARTBEATS = 3
_FINAL = ("Completed", "Failed", "Cancelled", "Crashed")


def zombie_automation(heartbeat_seconds: int) -> AutomationCore:
    """The automation: a run of our flows silent for ``MISSED_HEARTBEATS`` heartbeats is set Crashed."""
    silence = timedelta(seconds=heartbeat_seconds * MISSED_HEARTBEATS)
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=(
            f"A run of {BRONZE_FLOW} or {SILVER_FLOW} that sent no heartbeat and reached no final state for "
            f"{silence.seconds} s (its process is gone) is set Crashed, which frees its deployment's concurrency slot."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in _FINAL)},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": [BRONZE_FLOW, SILVER_FLOW]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[
            ChangeFlowRunState(
                name=None,
                force=False,
                state=StateType.CRASHED,
                message=f"no heartbeat for {silence.seconds} s: the flow run's process is gone (worker stopped?)",
            )
        ],
    )


def ensure_zombie_automation(client: SyncPrefectClient) -> str:
    """Create the automation, or bring the existing one (same name) up to date; one line saying which."""
    heartbeat = get_current_settings().flows.heartbeat_frequency
    if heartbeat is None:
        return f"automation {ZOMBIE_AUTOMATION!r}: not set up (flow run heartbeats are off)"
    wanted = zombie_automation(heartbeat)
    existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
    within = f"after {heartbeat * MISSED_HEARTBEATS} s without a heartbeat"
    if not existing:
        client.create_automation(wanted)
        return f"automation {ZOMBIE_AUTOMATION!r}: created ({within})"
    current = existing[0]
    if (current.description, current.trigger, current.actions, current.enabled) == (
        wanted.description,
        wanted.trigger,
        wanted.actions,
        True,
    ):
        return f"automation {ZOMBIE_AUTOMATION!r}: unchanged ({within})"
    client.update_automation(current.id, wanted)
    return f"automation {ZOMBIE_AUTOMATION!r}: updated ({within})"
