"""Put the catalog's deployments on a Prefect server (work pools), or serve them from this process.

Registering also creates what the deployments rely on, idempotently: each process work pool they name
(with the process worker's default job template) and, when the catalog has Airbyte-server sources, the
global concurrency limit that bounds concurrent syncs on that server across every run.

Every object gets one line saying whether it was ``created``, ``updated`` (and what changed) or ``unchanged``:
a deployment that would not change is not sent again (its schedules keep their ids and their scheduled runs).
Event triggers become automations this module keeps itself, updated in place under the same id (Prefect's own
``apply`` deletes and re-creates a deployment's trigger automations on every call, so older runs would lose the
link to the automation that started them). Ours are named ``<flow>/<deployment>: ...`` and are not "owned" by
the deployment; automations Prefect created for it (an earlier version of this command, ``prefect deploy``)
are replaced by them.

Deployments this catalog registered before but no longer declares (a source removed or renamed) are
reported; ``prune`` deletes them with their automations. A deployment belongs to a catalog when its
``catalog`` parameter names the same file (or neither has one: the built-in catalog), so catalogs that
share a server never prune each other's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast
from uuid import UUID

from prefect import get_client
from prefect import serve as prefect_serve
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.responses import DeploymentResponse
from prefect.deployments.runner import DeploymentApplyError, RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.events.schemas.automations import Automation, AutomationCore
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.schema_tools.validation import ValidationError, validate
from prefect.workers.process import ProcessWorker

from deployments.build import BRONZE_FLOW, SILVER_FLOW, DeploymentPlan, runner_deployments, trigger_kwargs
from deployments.zombies import ensure_zombie_automation
from lakehouse_ingest.catalog.sources import Catalog
from lakehouse_ingest.errors import ConfigError, IngestError
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings, SyncOptions
from tasks.airbyte import airbyte_limit_name


def register(
    catalog: Catalog, plans: list[DeploymentPlan], catalog_path: str | None = None, *, prune: bool = False
) -> list[str]:
    """Create or update every deployment (and its pool, limits and automations); one line per object."""
    lines = []
    with get_client(sync_client=True) as client:
        for pool in sorted({p.work_pool for p in plans}):
            lines.append(_ensure_process_pool(client, pool))
        lines.append(ensure_zombie_automation(client))
        if any(s.connector is None for s in catalog.sources):
            limit = SyncOptions().max_concurrent_syncs
            lines.append(_ensure_limit(client, airbyte_limit_name(AirbyteSettings.from_env().url), limit))
        schemas = {pool: _variables_schema(client, pool) for pool in {p.work_pool for p in plans if p.job_variables}}
        for plan in plans:  # all checked before the first is applied: a bad one leaves the server as it was
            _check_job_variables(plan, schemas.get(plan.work_pool))
        for plan, deployment in zip(plans, runner_deployments(plans, triggers=False), strict=True):
            deployment_id, line = _apply(client, plan, deployment)
            lines.append(line)
            lines += _sync_automations(client, plan, deployment_id)
        lines += _stale_deployments(client, plans, catalog_path, prune)
    return lines


def _apply(client: SyncPrefectClient, plan: DeploymentPlan, deployment: RunnerDeployment) -> tuple[UUID, str]:
    """Create or update the deployment unless the server already has it as planned; its id and one line."""
    where = f"on pool {plan.work_pool}"
    try:
        current = client.read_deployment_by_name(plan.full_name)
    except ObjectNotFound:
        current = None
    changed = _changes(current, deployment) if current is not None else []
    if current is not None and not changed:
        return current.id, f"deployment {plan.full_name}: unchanged ({current.id}) {where}"
    try:
        deployment_id = cast(UUID, deployment.apply())  # sync context: the id, not a coroutine
    except DeploymentApplyError as exc:
        raise IngestError(f"deployment {plan.full_name}: the Prefect server refused it: {exc}") from None
    if current is None:
        return deployment_id, f"deployment {plan.full_name}: created ({deployment_id}) {where}"
    return deployment_id, f"deployment {plan.full_name}: updated {', '.join(changed)} ({deployment_id}) {where}"


def _changes(current: DeploymentResponse, wanted: RunnerDeployment) -> list[str]:
    """What would change on the server if ``wanted`` were applied over ``current`` (field names)."""
    pull = wanted.storage.to_pull_step() if wanted.storage else []
    limit = current.global_concurrency_limit.limit if current.global_concurrency_limit else None
    strategy = current.concurrency_options.collision_strategy if current.concurrency_options else None
    wanted_strategy = wanted.concurrency_options.collision_strategy if wanted.concurrency_options else None
    pairs: dict[str, tuple[Any, Any]] = {
        "entrypoint": (current.entrypoint, wanted.entrypoint),
        "description": (current.description or "", wanted.description or ""),
        "tags": (list(current.tags), list(wanted.tags)),
        "parameters": (current.parameters, wanted.parameters),
        "parameter schema": (
            current.parameter_openapi_schema,
            wanted._parameter_openapi_schema.model_dump(exclude_unset=True),
        ),
        "enforce parameter schema": (current.enforce_parameter_schema, wanted.enforce_parameter_schema),
        "work pool": (current.work_pool_name, wanted.work_pool_name),
        "work queue": (current.work_queue_name, wanted.work_queue_name or "default"),
        "job variables": (current.job_variables or {}, wanted.job_variables or {}),
        "paused": (current.paused, wanted.paused),
        "pull steps": (current.pull_steps or [], pull if isinstance(pull, list) else [pull]),
        "concurrency": ((limit, strategy if limit else None), (wanted.concurrency_limit, wanted_strategy)),
        "schedules": (
            [_schedule_key(s.schedule, s.active) for s in current.schedules],
            [_schedule_key(s.schedule, s.active) for s in wanted.schedules or []],
        ),
    }
    return [name for name, (have, want) in pairs.items() if have != want]


def _schedule_key(schedule: Any, active: bool | None) -> tuple[Any, ...]:
    """What the catalog says of a schedule (an interval's anchor is Prefect's, set when it was created)."""
    dumped = schedule.model_dump(mode="json")
    dumped.pop("anchor_date", None)
    return (*sorted((k, str(v)) for k, v in dumped.items()), ("active", bool(active)))


def _sync_automations(client: SyncPrefectClient, plan: DeploymentPlan, deployment_id: UUID) -> list[str]:
    """Create, update in place or delete this deployment's trigger automations; one line per automation."""
    resource = f"prefect.deployment.{deployment_id}"
    before = {a.id: a for a in client.read_resource_related_automations(resource)}
    client.delete_resource_owned_automations(resource)  # Prefect's own, from apply() or prefect deploy
    related = {a.id: a for a in client.read_resource_related_automations(resource)}
    lines = [
        f"automation {a.name!r}: removed (Prefect's own copy of a trigger; register keeps the trigger instead)"
        for automation_id, a in before.items()
        if automation_id not in related
    ]
    ours = {a.name: a for a in related.values() if _is_ours(a, plan)}
    wanted = [_automation(plan, trigger, deployment_id) for trigger in plan.triggers]
    for automation in wanted:
        current = ours.pop(automation.name, None)
        if current is None:
            new_id = client.create_automation(automation)
            lines.append(f"automation {automation.name!r}: created ({new_id})")
        elif _automation_key(current) == _automation_key(automation):
            lines.append(f"automation {automation.name!r}: unchanged ({current.id})")
        else:
            client.update_automation(current.id, automation)
            lines.append(f"automation {automation.name!r}: updated ({current.id})")
    for name, automation in ours.items():  # a trigger the catalog no longer declares
        client.delete_automation(automation.id)
        lines.append(f"automation {name!r}: deleted (no longer in the catalog)")
    return lines


MANAGED = "Kept by `python -m deployments register`: change the catalog, not this automation."


def _automation(plan: DeploymentPlan, trigger: dict[str, Any], deployment_id: UUID) -> AutomationCore:
    deployment_trigger = DeploymentEventTrigger(**trigger_kwargs(trigger))
    deployment_trigger.set_deployment_id(deployment_id)
    automation = deployment_trigger.as_automation()
    # Not owned by the deployment (Prefect's apply would delete it), and without owner_resource at all: the update
    # endpoint refuses the field.
    return AutomationCore(
        name=automation.name,
        description=f"{automation.description} {MANAGED}".strip(),
        enabled=automation.enabled,
        trigger=automation.trigger,
        actions=automation.actions,
    )


def _is_ours(automation: Automation, plan: DeploymentPlan) -> bool:
    return automation.name.startswith(f"{plan.full_name}: ")


def _automation_key(automation: AutomationCore) -> tuple[Any, ...]:
    trigger = automation.trigger.model_dump(mode="json", exclude={"id"})
    actions = [a.model_dump(mode="json") for a in automation.actions]
    return automation.name, automation.description, automation.enabled, trigger, actions


def _stale_deployments(
    client: SyncPrefectClient, plans: list[DeploymentPlan], catalog_path: str | None, prune: bool
) -> list[str]:
    """Report (or, with ``prune``, delete) this catalog's deployments that it no longer declares."""
    declared = {plan.full_name for plan in plans}
    flows = {flow.id: flow.name for flow in client.read_flows(flow_filter=_our_flows())}
    lines = []
    for deployment in _our_deployments(client):
        full_name = f"{flows.get(deployment.flow_id, '?')}/{deployment.name}"
        if full_name in declared or deployment.parameters.get("catalog") != catalog_path:
            continue
        if prune:
            resource = f"prefect.deployment.{deployment.id}"
            client.delete_resource_owned_automations(resource)
            for automation in _named_for(client.read_resource_related_automations(resource), full_name):
                client.delete_automation(automation.id)
            client.delete_deployment(deployment.id)
            lines.append(f"deployment {full_name}: deleted (no longer in the catalog)")
        else:
            lines.append(f"deployment {full_name}: no longer in the catalog, kept (--prune deletes it)")
    return lines


def _named_for(automations: Iterable[Automation], full_name: str) -> list[Automation]:
    return [a for a in automations if a.name.startswith(f"{full_name}: ")]


def _our_deployments(client: SyncPrefectClient, page: int = 200) -> list[DeploymentResponse]:
    """Every deployment of the bronze and silver flows, page by page (the API caps one read)."""
    found: list[DeploymentResponse] = []
    while batch := client.read_deployments(flow_filter=_our_flows(), limit=page, offset=len(found)):
        found += batch
        if len(batch) < page:
            break
    return found


def _our_flows() -> FlowFilter:
    return FlowFilter(name=FlowFilterName(any_=[BRONZE_FLOW, SILVER_FLOW]))


def serve(plans: list[DeploymentPlan]) -> None:
    """Serve every deployment from this process until interrupted (schedules and triggers included; Prefect
    re-creates the triggers' automations each time this starts)."""
    prefect_serve(*runner_deployments(plans, serve=True))


def _variables_schema(client: SyncPrefectClient, pool: str) -> dict[str, Any] | None:
    """The JSON schema of the pool's job variables (None when its template declares none)."""
    schema = (client.read_work_pool(pool).base_job_template or {}).get("variables")
    return dict(schema) if schema else None


def _check_job_variables(plan: DeploymentPlan, schema: dict[str, Any] | None) -> None:
    """Check the plan's job variables against its pool's schema, as the server would, before anything is applied."""
    if not plan.job_variables or not schema:
        return
    try:
        validate(plan.job_variables, schema, raise_on_error=True, ignore_required=True, allow_none_with_default=True)
    except ValidationError as exc:
        raise ConfigError(f"deployment {plan.full_name}: job_variables for pool {plan.work_pool}: {exc}") from None


def _ensure_process_pool(client: SyncPrefectClient, name: str) -> str:
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        template = ProcessWorker.get_default_base_job_template()
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
        except ObjectAlreadyExists:  # created meanwhile by a worker starting up
            return f"work pool {name}: unchanged (created meanwhile by a worker)"
        return f"work pool {name}: created (process)"
    return f"work pool {name}: unchanged ({pool.type})"


def _ensure_limit(client: SyncPrefectClient, name: str, limit: int) -> str:
    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        return f"concurrency limit {name}: created ({limit} concurrent syncs)"
    if current.limit != limit:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
        return f"concurrency limit {name}: updated ({current.limit} -> {limit} concurrent syncs)"
    return f"concurrency limit {name}: unchanged ({limit} concurrent syncs)"
