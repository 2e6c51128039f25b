"""Put the catalog's deployments on a Prefect server (work pools), or serve them from this process.

Registering also creates what the deployments rely on, idempotently: each process work pool they name
(with the process worker's default job template) and, when the catalog has Airbyte-server sources, the
global concurrency limit that bounds concurrent syncs on that server across every run.
"""

from __future__ import annotations

from prefect import get_client
from prefect import serve as prefect_serve
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.process import ProcessWorker

from deployments.build import DeploymentPlan, runner_deployments
from lakehouse_ingest.airbyte.client import AirbyteSettings
from lakehouse_ingest.catalog import Catalog
from tasks.airbyte import PlatformOptions, airbyte_limit_name


def register(catalog: Catalog, plans: list[DeploymentPlan]) -> list[str]:
    """Create or update every deployment (and its pool and limits); one line per thing done."""
    lines = []
    with get_client(sync_client=True) as client:
        for pool in sorted({p.work_pool for p in plans}):
            lines.append(_ensure_process_pool(client, pool))
        if any(s.connector is None for s in catalog.sources):
            limit = PlatformOptions.from_env().max_concurrent_syncs
            lines.append(_ensure_limit(client, airbyte_limit_name(AirbyteSettings.from_env().url), limit))
    for plan, deployment in zip(plans, runner_deployments(plans), strict=True):
        deployment_id = deployment.apply()
        lines.append(f"deployment {plan.full_name}: registered ({deployment_id}) on pool {plan.work_pool}")
    return lines


def serve(plans: list[DeploymentPlan]) -> None:
    """Serve every deployment from this process until interrupted (schedules and triggers included)."""
    prefect_serve(*runner_deployments(plans, serve=True))


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
