"""Turn the catalog into deployments: one bronze deployment per source (or declared group), and one silver
deployment that Prefect runs whenever a bronze batch is handed off (``bronze.batch.validated``).

The catalog becomes ``DeploymentPlan``s first (plain data, easy to test and to print), then either Prefect's
``RunnerDeployment`` objects (register / serve) or a ``prefect.yaml`` document (``prefect deploy --all``).
Entrypoints are module paths (``flows.bronze.bronze_ingest``): the worker imports the installed project,
so no code is copied or pulled at run time. Every bronze deployment has a concurrency limit of one run
(a second run is skipped, or queued with ``overlap: queue``), so one source never syncs twice at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval, Schedule
from prefect.types.entrypoint import EntrypointType

from flows.bronze.flow import bronze_ingest
from flows.silver.flow import silver_merge
from lakehouse_ingest.bronze.manifest import EVENT_VALIDATED
from lakehouse_ingest.catalog.deployments import DeploymentSpec, EventTriggerSpec, ScheduleSpec, duration_seconds
from lakehouse_ingest.catalog.sources import Catalog, SourceEntry

BRONZE_FLOW = "bronze-ingest"
SILVER_FLOW = "silver-merge"
BRONZE_ENTRYPOINT = "flows.bronze.flow.bronze_ingest"
SILVER_ENTRYPOINT = "flows.silver.flow.silver_merge"
# What the silver run receives from the bronze.batch.validated event that triggers it.
SILVER_TRIGGER_PARAMETERS = {"manifests": ["{{ event.payload.manifest }}"], "silver": "{{ event.payload.silver_root }}"}


@dataclass(frozen=True)
class DeploymentPlan:
    """One deployment as the catalog declares it, before it becomes Prefect's object or YAML."""

    flow: str
    name: str
    entrypoint: str
    parameters: dict[str, Any]
    schedules: list[ScheduleSpec]
    triggers: list[dict[str, Any]]
    work_pool: str
    work_queue: str | None
    tags: list[str]
    description: str
    overlap: str
    paused: bool
    job_variables: dict[str, Any]

    @property
    def full_name(self) -> str:
        """``<flow>/<deployment>``, as ``prefect deployment run`` takes it."""
        return f"{self.flow}/{self.name}"


DEFAULT_WORK_POOL = "lakehouse-process"


def default_work_pool(catalog: Catalog) -> str:
    """The catalog's default pool, else ``$PREFECT_WORK_POOL`` (what the compose worker polls), else ours."""
    return catalog.deployments.work_pool or os.environ.get("PREFECT_WORK_POOL") or DEFAULT_WORK_POOL


def plan_deployments(catalog: Catalog, catalog_path: str | None) -> list[DeploymentPlan]:
    """Every deployment the catalog declares: bronze per source or group, then silver (unless disabled)."""
    defaults = catalog.deployments
    plans = [
        _bronze_plan(name, sources, spec, catalog, catalog_path) for name, sources, spec in catalog.deployment_units()
    ]
    if defaults.silver.enabled:
        plans.append(
            DeploymentPlan(
                flow=SILVER_FLOW,
                name=defaults.silver.name,
                entrypoint=SILVER_ENTRYPOINT,
                parameters={"catalog": catalog_path} if catalog_path else {},
                schedules=[],
                triggers=[_silver_trigger(catalog, catalog_path)],
                work_pool=defaults.silver.work_pool or default_work_pool(catalog),
                work_queue=defaults.silver.work_queue or defaults.work_queue,
                tags=[*defaults.tags, "silver"],
                description="Merge each validated bronze batch into its silver Delta table "
                f"(triggered by {EVENT_VALIDATED}).",
                overlap="queue",  # every batch must be merged: runs wait their turn, none is dropped
                paused=False,
                job_variables=merged_job_variables(defaults.job_variables, defaults.silver.job_variables),
            )
        )
    return plans


def _bronze_plan(
    name: str, sources: list[SourceEntry], spec: DeploymentSpec, catalog: Catalog, catalog_path: str | None
) -> DeploymentPlan:
    defaults = catalog.deployments
    names = [s.name for s in sources]
    parameters: dict[str, Any] = {"sources": names}
    if catalog_path:
        parameters["catalog"] = catalog_path
    return DeploymentPlan(
        flow=BRONZE_FLOW,
        name=name,
        entrypoint=BRONZE_ENTRYPOINT,
        parameters=parameters,
        schedules=list(spec.schedules),
        triggers=[_event_trigger(t) for t in spec.triggers],
        work_pool=spec.work_pool or default_work_pool(catalog),
        work_queue=spec.work_queue or defaults.work_queue,
        tags=list(dict.fromkeys([*defaults.tags, "bronze", *spec.tags, *(f"source:{n}" for n in names)])),
        description=spec.description or f"Sync {', '.join(names)} into bronze, validate and hand off to silver.",
        overlap=spec.overlap,
        paused=spec.paused,
        job_variables=merged_job_variables(defaults.job_variables, spec.job_variables),
    )


def merged_job_variables(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A deployment's job variables over the catalog's: mappings (``env``, ``labels``) merge key by key."""
    merged = dict(defaults)
    for key, value in own.items():
        base = merged.get(key)
        merged[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    return merged


def _event_trigger(spec: EventTriggerSpec) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "type": "event",
        "enabled": True,
        "expect": list(spec.expect),
        "match": dict(spec.match),
        "match_related": dict(spec.match_related),
        "posture": "Reactive",
        "threshold": spec.threshold,
    }
    if spec.within:
        trigger["within"] = int(duration_seconds(spec.within))
    return trigger


def _silver_trigger(catalog: Catalog, catalog_path: str | None) -> dict[str, Any]:
    """Run silver for each batch of this catalog's sources (not for another catalog's on the same server)."""
    parameters: dict[str, Any] = dict(SILVER_TRIGGER_PARAMETERS)
    if catalog_path:
        parameters["catalog"] = catalog_path
    return {
        "type": "event",
        "enabled": True,
        "name": f"{SILVER_FLOW} on {EVENT_VALIDATED}",
        "expect": [EVENT_VALIDATED],
        "match": {"prefect.resource.id": [f"bronze.batch.{s.name}.*" for s in catalog.sources]},
        "match_related": {},
        "posture": "Reactive",
        "threshold": 1,
        "parameters": parameters,
    }


def runner_deployments(plans: list[DeploymentPlan], *, serve: bool = False) -> list[RunnerDeployment]:
    """Prefect's deployment objects (without work pools when ``serve``: the serving process runs them)."""
    flows: dict[str, Flow[..., Any]] = {BRONZE_FLOW: bronze_ingest, SILVER_FLOW: silver_merge}
    return [
        cast(
            RunnerDeployment,
            flows[plan.flow].to_deployment(
                name=plan.name,
                schedules=[_schedule(s) for s in plan.schedules],
                triggers=[DeploymentEventTrigger(**_trigger_kwargs(t)) for t in plan.triggers],
                concurrency_limit=_concurrency(plan.overlap),
                parameters=plan.parameters,
                description=plan.description,
                tags=plan.tags,
                paused=plan.paused,
                work_pool_name=None if serve else plan.work_pool,
                work_queue_name=None if serve else plan.work_queue,
                job_variables=None if serve else plan.job_variables,
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )  # sync context: the object itself, not a coroutine
        for plan in plans
    ]


def _schedule(spec: ScheduleSpec) -> Schedule:
    if spec.cron is not None:
        return Cron(spec.cron, timezone=spec.timezone, active=spec.active)
    assert spec.interval is not None  # the model guarantees one of the two
    return Interval(timedelta(seconds=duration_seconds(spec.interval)), timezone=spec.timezone, active=spec.active)


def _trigger_kwargs(trigger: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in trigger.items() if k != "type"}
    kwargs["expect"] = set(kwargs["expect"])
    if "within" in kwargs:
        kwargs["within"] = timedelta(seconds=kwargs["within"])
    return kwargs


def _concurrency(overlap: str) -> ConcurrencyLimitConfig:
    strategy = ConcurrencyLimitStrategy.CANCEL_NEW if overlap == "skip" else ConcurrencyLimitStrategy.ENQUEUE
    return ConcurrencyLimitConfig(limit=1, collision_strategy=strategy)


def prefect_yaml(plans: list[DeploymentPlan]) -> dict[str, Any]:
    """The ``prefect.yaml`` document declaring the same deployments (for ``prefect deploy --all``)."""
    return {
        "name": "airbyte-lakehouse",
        "prefect-version": "3.8.8",
        # The project is installed where the worker runs (the compose worker image, or `pip install -e .`):
        # module entrypoints import it, nothing is pulled at run time.
        "build": None,
        "push": None,
        "pull": [],
        "deployments": [_yaml_deployment(p) for p in plans],
    }


def _yaml_deployment(plan: DeploymentPlan) -> dict[str, Any]:
    schedules = []
    for spec in plan.schedules:
        kind = {"cron": spec.cron} if spec.cron else {"interval": int(duration_seconds(spec.interval or ""))}
        schedules.append({**kind, "timezone": spec.timezone, "active": spec.active})
    strategy = "CANCEL_NEW" if plan.overlap == "skip" else "ENQUEUE"
    return {
        "name": plan.name,
        "entrypoint": plan.entrypoint,
        "description": plan.description,
        "tags": plan.tags,
        "parameters": plan.parameters,
        "schedules": schedules,
        "triggers": plan.triggers,
        "concurrency_limit": {"limit": 1, "collision_strategy": strategy},
        "paused": plan.paused,
        "work_pool": {"name": plan.work_pool, "work_queue_name": plan.work_queue, "job_variables": plan.job_variables},
    }
