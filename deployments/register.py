"""Put the catalog's deployments on a Prefect server (work pools), or serve them from this process.

Registering also creates what the deployments rely on, idempotently: each process work pool they name
(with the process worker's default job template) and, when the catalog has Airbyte-server sources, the
global concurrency limit that bounds concurrent syncs on that server across every run.

Deployments this catalog registered before but no longer declares (a source removed or renamed) are
reported; ``prune`` deletes them with their triggers. A deployment belongs to a catalog when its
``catalog`` parameter names the same file (or neither has one: the built-in catalog), so catalogs that
share a server never prune each other's.
"""

from __future__ import annotations

from typing import Any

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
from prefect.deployments.runner import DeploymentApplyError
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.schema_tools.validation import ValidationError, validate
from prefect.workers.process import ProcessWorker

from deployments.build import BRONZE_FLOW, SILVER_FLOW, DeploymentPlan, runner_deployments
from deployments.zombies import ensure_zombie_automation
from lakehouse_ingest.catalog.sources import Catalog
from lakehouse_ingest.errors import ConfigError, IngestError
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings, SyncOptions
from tasks.airbyte import airbyte_limit_name


def register(
    catalog: Catalog, plans: list[DeploymentPlan], catalog_path: str | None = None, *, prune: bool = False
) -> list[str]:
    """Create or update every deployment (and its pool and limits); one line per thing done."""
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
    for plan, deployment in zip(plans, runner_deployments(plans), strict=True):
        try:
            deployment_id = deployment.apply()
        except DeploymentApplyError as exc:
            raise IngestError(f"deployment {plan.full_name}: the Prefect server refused it: {exc}") from None
        lines.append(f"deployment {plan.full_name}: registered ({deployment_id}) on pool {plan.work_pool}")
    with get_client(sync_client=True) as client:
        lines += _stale_deployments(client, plans, catalog_path, prune)
    return lines


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
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
            client.delete_deployment(deployment.id)
            lines.append(f"deployment {full_name}: deleted (no longer in the catalog)")
        else:
            lines.append(f"deployment {full_name}: no longer in the catalog, kept (--prune deletes it)")
    return lines


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
    """Serve every deployment from this process until interrupted (schedules and triggers included)."""
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
            return f"work pool {name}: exists"
        return f"work pool {name}: created (process)"
    return f"work pool {name}: exists ({pool.type})"


def _ensure_limit(client: SyncPrefectClient, name: str, limit: int) -> str:
    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        return f"concurrency limit {name}: created ({limit} concurrent syncs)"
    if current.limit != limit:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
        return f"concurrency limit {name}: {current.limit} -> {limit} concurrent syncs"
    return f"concurrency limit {name}: exists ({limit} concurrent syncs)"
