"""Turn the catalog into deployments: one bronze deployment per source (or declared group), and one silver
deployment that Prefect runs once per bronze run and source, with every batch it handed off
(``bronze.batches.validated``, see ``lakehouse_ingest.runs.silver_runs``).

The catalog becomes ``DeploymentPlan``s first (plain data, easy to test and to print), then either Prefect's
``RunnerDeployment`` objects (register / serve) or a ``prefect.yaml`` document (``prefect deploy --all``).
Entrypoints are module paths (``flows.bronze.flow.bronze_ingest``): the worker imports the installed project;
the one pull step says so (``deployments.steps``), nothing is copied or pulled at run time. Every bronze
deployment has a concurrency limit of one run (a second run is skipped, or queued with ``overlap: queue``), so
one source never syncs twice at once. Silver has none: its runs proceed side by side, and runs of one source take
turns (each holds its sources' one-slot global concurrency limit), so merges into one table never overlap. A
parameter the flow does not take is refused when the run is created (the parameter schema allows no others).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import prefect
from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval, Schedule
from prefect.types.entrypoint import EntrypointType
from prefect.utilities.callables import ParameterSchema

from deployments.steps import STEP, InstalledProject
from flows.bronze.flow import bronze_ingest
from flows.silver.flow import silver_merge
from lakehouse_ingest.catalog.deployments import DeploymentSpec, EventTriggerSpec, ScheduleSpec, duration_seconds
from lakehouse_ingest.catalog.sources import Catalog, SourceEntry
from lakehouse_ingest.runs.silver_runs import EVENT_BATCHES_VALIDATED, TRIGGER_PARAMETERS

BRONZE_FLOW = "bronze-ingest"
SILVER_FLOW = "silver-merge"
BRONZE_ENTRYPOINT = "flows.bronze.flow.bronze_ingest"
SILVER_ENTRYPOINT = "flows.silver.flow.silver_merge"
# What the silver run receives from the bronze.batches.validated event that triggers it.
SILVER_TRIGGER_PARAMETERS = TRIGGER_PARAMETERS


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
                triggers=[_silver_trigger(catalog, catalog_path, defaults.silver.name)],
                work_pool=defaults.silver.work_pool or default_work_pool(catalog),
                work_queue=defaults.silver.work_queue or defaults.work_queue,
                tags=[*defaults.tags, "silver"],
                description="Merge the batches each bronze run hands off into their silver Delta tables, streams "
                f"side by side (run once per bronze run and source, on {EVENT_BATCHES_VALIDATED}).",
                # No run limit: runs of different sources merge at the same time; runs of one source take turns
                # (tasks.silver.source_slots), and every batch is applied exactly once by its Delta commit.
                overlap="parallel",
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
        triggers=[_event_trigger(t, f"{BRONZE_FLOW}/{name}", i) for i, t in enumerate(spec.triggers, 1)],
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


def _event_trigger(spec: EventTriggerSpec, deployment: str, number: int) -> dict[str, Any]:
    expects = ", ".join(spec.expect)
    trigger: dict[str, Any] = {
        "type": "event",
        "enabled": True,
        "name": f"{deployment}: trigger {number} (on {expects})",
        "description": f"Runs {deployment} when {expects} arrives (the catalog's trigger {number}).",
        "expect": list(spec.expect),
        "match": dict(spec.match),
        "match_related": dict(spec.match_related),
        "posture": "Reactive",
        "threshold": spec.threshold,
    }
    if spec.within:
        trigger["within"] = int(duration_seconds(spec.within))
    return trigger


def _silver_trigger(catalog: Catalog, catalog_path: str | None, name: str) -> dict[str, Any]:
    """Run silver once per bronze run and source of this catalog (not for another catalog's on the same server),
    with every manifest that run handed off."""
    parameters: dict[str, Any] = dict(SILVER_TRIGGER_PARAMETERS)
    if catalog_path:
        parameters["catalog"] = catalog_path
    sources = [s.name for s in catalog.sources]
    return {
        "type": "event",
        "enabled": True,
        "name": f"{SILVER_FLOW}/{name}: on {EVENT_BATCHES_VALIDATED}",
        "description": (
            f"Runs {SILVER_FLOW}/{name} once per bronze run and source ({', '.join(sources)}), with every manifest "
            f"that run handed off ({EVENT_BATCHES_VALIDATED})."
        ),
        "expect": [EVENT_BATCHES_VALIDATED],
        "match": {"prefect.resource.id": [f"bronze.source.{s}" for s in sources]},
        "match_related": {},
        "posture": "Reactive",
        "threshold": 1,
        "parameters": parameters,
    }


def runner_deployments(
    plans: list[DeploymentPlan], *, serve: bool = False, triggers: bool = True
) -> list[RunnerDeployment]:
    """Prefect's deployment objects (without work pools when ``serve``: the serving process runs them).

    ``triggers=False`` leaves the event triggers out: ``register`` keeps their automations itself, updated in place
    (Prefect's own ``apply`` deletes and re-creates a deployment's triggers on every call).
    """
    flows: dict[str, Flow[..., Any]] = {BRONZE_FLOW: bronze_ingest, SILVER_FLOW: silver_merge}
    deployments = []
    for plan in plans:
        deployment = cast(
            RunnerDeployment,
            flows[plan.flow].to_deployment(
                name=plan.name,
                schedules=[_schedule(s) for s in plan.schedules],
                triggers=[DeploymentEventTrigger(**trigger_kwargs(t)) for t in plan.triggers] if triggers else [],
                concurrency_limit=_concurrency(plan.overlap),
                parameters=plan.parameters,
                description=plan.description,
                tags=plan.tags,
                paused=plan.paused,
                work_pool_name=None if serve else plan.work_pool,
                work_queue_name=None if serve else plan.work_queue,
                job_variables=None if serve else plan.job_variables,
                entrypoint_type=EntrypointType.MODULE_PATH,
                enforce_parameter_schema=True,
            ),
        )  # sync context: the object itself, not a coroutine
        if not serve:
            deployment.storage = InstalledProject()
        deployment._parameter_openapi_schema = _closed(deployment._parameter_openapi_schema)
        deployments.append(deployment)
    return deployments


class _ClosedParameterSchema(ParameterSchema):
    """The flow's parameter schema, allowing no other parameters: a misspelt one is refused when the run is
    created (one line from the API, the CLI and the Run form) instead of crashing the run's process later."""

    additionalProperties: bool = False  # noqa: N815 (the JSON schema keyword)


def _closed(schema: ParameterSchema) -> ParameterSchema:
    return _ClosedParameterSchema(**schema.model_dump(), additionalProperties=False)


def _schedule(spec: ScheduleSpec) -> Schedule:
    if spec.cron is not None:
        return Cron(spec.cron, timezone=spec.timezone, active=spec.active)
    assert spec.interval is not None  # the model guarantees one of the two
    return Interval(timedelta(seconds=duration_seconds(spec.interval)), timezone=spec.timezone, active=spec.active)


def trigger_kwargs(trigger: dict[str, Any]) -> dict[str, Any]:
    """A plan's trigger as ``DeploymentEventTrigger`` keyword arguments."""
    kwargs = {k: v for k, v in trigger.items() if k != "type"}
    kwargs["expect"] = set(kwargs["expect"])
    if "within" in kwargs:
        kwargs["within"] = timedelta(seconds=kwargs["within"])
    return kwargs


def _concurrency(overlap: str) -> ConcurrencyLimitConfig | None:
    if overlap == "parallel":
        return None
    strategy = ConcurrencyLimitStrategy.CANCEL_NEW if overlap == "skip" else ConcurrencyLimitStrategy.ENQUEUE
    return ConcurrencyLimitConfig(limit=1, collision_strategy=strategy)


def prefect_yaml(plans: list[DeploymentPlan]) -> dict[str, Any]:
    """The ``prefect.yaml`` document declaring the same deployments (for ``prefect deploy --all``)."""
    return {
        "name": "airbyte-lakehouse",
        "prefect-version": prefect.__version__,
        # The project is installed where the worker runs (the compose worker image, or `pip install -e .`):
        # module entrypoints import it, nothing is pulled at run time (the step says so).
        "build": None,
        "push": None,
        "pull": [{STEP: {}}],
        "deployments": [_yaml_deployment(p) for p in plans],
    }


def _yaml_deployment(plan: DeploymentPlan) -> dict[str, Any]:
    schedules = []
    for spec in plan.schedules:
        kind = {"cron": spec.cron} if spec.cron else {"interval": int(duration_seconds(spec.interval or ""))}
        schedules.append({**kind, "timezone": spec.timezone, "active": spec.active})
    strategy = "CANCEL_NEW" if plan.overlap == "skip" else "ENQUEUE"
    limit = None if plan.overlap == "parallel" else {"limit": 1, "collision_strategy": strategy}
    return {
        "name": plan.name,
        "entrypoint": plan.entrypoint,
        "description": plan.description,
        "tags": plan.tags,
        "parameters": plan.parameters,
        "schedules": schedules,
        "triggers": plan.triggers,
        "concurrency_limit": limit,
        "paused": plan.paused,
        "work_pool": {"name": plan.work_pool, "work_queue_name": plan.work_queue, "job_variables": plan.job_variables},
    }
