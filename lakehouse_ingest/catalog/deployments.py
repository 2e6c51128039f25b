"""How the catalog says when and where its sources run: schedules, triggers, work pools, groups.

Plain pydantic models (no Prefect here); ``deployments/`` turns them into Prefect deployments.

```yaml
deployments:                       # defaults for every deployment generated from this catalog
  work_pool: lakehouse-process     # default: $PREFECT_WORK_POOL, else lakehouse-process
  tags: [lakehouse]
  silver: {enabled: true}          # silver-merge deployment, triggered by bronze.batch.validated
groups:                            # optional: several sources synced in parallel by one deployment
  - name: crm
    sources: [hubspot, salesforce]
    deployment: {schedules: [{cron: "0 */6 * * *"}]}
sources:
  - name: faker
    min_interval: 1h               # a run within 1 h of the last successful sync skips it
    deployment:
      schedules: [{cron: "0 */6 * * *", timezone: Europe/Madrid}, {interval: 30m, active: false}]
      triggers: [{expect: [orders.exported], match: {prefect.resource.id: "erp.orders.*"}}]
      overlap: skip                # skip (default) or queue a run while the last one still runs
      job_variables: {env: {LOG_LEVEL: DEBUG}}   # the work pool's job variables (image, cpu, env, ...)
```
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?#LW-]+")
DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def duration_seconds(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``2d`` → seconds; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match or float(match["amount"]) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 6h or 2d")
    return float(match["amount"]) * _UNITS[match["unit"]]


def _duration(text: str) -> str:
    duration_seconds(text)
    return text


def _cron(text: str) -> str:
    fields = text.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError(f"{text!r} is not a cron expression of 5 fields such as '0 */6 * * *'")
    return text


def _deployment_name(text: str) -> str:
    if not DEPLOYMENT_NAME.fullmatch(text) or ".." in text:
        raise ValueError(f"{text!r}: use 1-128 letters, digits, '_', '-' or '.'")
    return text


Duration = Annotated[str, AfterValidator(_duration)]
Cron = Annotated[str, AfterValidator(_cron)]
DeploymentName = Annotated[str, AfterValidator(_deployment_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleSpec(_Model):
    """One schedule: a cron expression or an interval (exactly one)."""

    cron: Cron | None = None
    interval: Duration | None = None
    timezone: str = "UTC"
    active: bool = True

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule needs exactly one of 'cron' or 'interval'")
        return self


class EventTriggerSpec(_Model):
    """Run the deployment when an event arrives (Prefect deployment trigger, reactive)."""

    expect: list[str] = Field(min_length=1, description="event names, e.g. orders.exported")
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    match_related: dict[str, str | list[str]] = Field(default_factory=dict)
    threshold: int = Field(1, ge=1)
    within: Duration | None = None


class DeploymentSpec(_Model):
    """When and where one bronze deployment runs."""

    schedules: list[ScheduleSpec] = Field(default_factory=list)
    triggers: list[EventTriggerSpec] = Field(default_factory=list)
    work_pool: str | None = None
    work_queue: str | None = None
    tags: list[str] = Field(default_factory=list)
    overlap: Literal["skip", "queue"] = "skip"
    paused: bool = False
    description: str | None = None
    # Overrides of the work pool's job template (docker: image, volumes; kubernetes: image, namespace,
    # cpu_request; process: env, working_dir), on top of the catalog's default job variables.
    job_variables: dict[str, Any] = Field(default_factory=dict)


class SilverDeploymentSpec(_Model):
    """The silver-merge deployment, run by Prefect when a bronze batch is handed off."""

    enabled: bool = True
    name: DeploymentName = "on-bronze-validated"
    work_pool: str | None = None
    work_queue: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)


class DeploymentDefaults(_Model):
    """Defaults for every deployment generated from the catalog."""

    work_pool: str | None = None  # default: $PREFECT_WORK_POOL, else lakehouse-process
    work_queue: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)  # every deployment's, under its own
    tags: list[str] = Field(default_factory=lambda: ["lakehouse"])
    silver: SilverDeploymentSpec = Field(default_factory=lambda: SilverDeploymentSpec())


class GroupEntry(_Model):
    """Several sources synced in parallel by one deployment (the seeds' parallel syncs)."""

    name: DeploymentName
    sources: list[str] = Field(min_length=1)
    deployment: DeploymentSpec = Field(default_factory=lambda: DeploymentSpec())
