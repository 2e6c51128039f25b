"""Deployments generated from the catalog: their shape, the CLI, and what the Prefect test server stores.

On the server: `python -m deployments register` (pools, limits, schedules, parameters, triggers; created /
updated / unchanged per object, automations updated in place), `prefect deploy --all` from the generated
prefect.yaml, and the silver trigger creating one flow run with every manifest when a `bronze.batches.validated`
event arrives. The end-to-end serve test lives in test_deployments_serve.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.exceptions import ObjectNotFound

from deployments.__main__ import main as deployments_main
from deployments.build import BRONZE_ENTRYPOINT, SILVER_ENTRYPOINT, plan_deployments, runner_deployments
from lakehouse_ingest.catalog.sources import Catalog, parse_catalog
from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.runs.silver_runs import batches_event

ROOT = Path(__file__).resolve().parent.parent

CATALOG = """
deployments:
  work_pool: {pool}
  tags: [lakehouse, test]
  job_variables: {{env: {{LOG_LEVEL: INFO, TEAM: data}}}}
  silver: {{name: {silver}, job_variables: {{working_dir: /srv/silver}}}}
groups:
  - name: {prefix}crm
    sources: [{prefix}a, {prefix}b]
    deployment:
      schedules: [{{cron: "0 */6 * * *", timezone: Europe/Madrid}}]
      tags: [crm]
sources:
  - name: {prefix}faker
    connector: {{package: airbyte-source-faker, version: "7.2.1"}}
    config: {{count: 10}}
    min_interval: 1h
    deployment:
      schedules: [{{interval: 30m, active: false}}]
      triggers:
        - expect: [erp.orders.exported]
          match: {{prefect.resource.id: "erp.orders.*"}}
          within: 5m
          threshold: 2
      overlap: queue
      work_pool: {pool}-other
      job_variables: {{env: {{LOG_LEVEL: DEBUG}}, working_dir: /srv/faker}}
  - name: {prefix}a
    connector: {{package: airbyte-source-faker}}
  - name: {prefix}b
    connector: {{package: airbyte-source-faker}}
"""


def _catalog_text(prefix: str = "", pool: str = "test-pool", silver: str = "on-bronze-validated") -> str:
    return CATALOG.format(prefix=prefix, pool=pool, silver=silver)


def _catalog(prefix: str = "", **kwargs: str) -> Catalog:
    return parse_catalog(_catalog_text(prefix, **kwargs), "test", {})


def _by_name(plans: list[Any]) -> dict[str, Any]:
    return {p.full_name: p for p in plans}


# --- plans and Prefect objects, no server ---------------------------------------------------------------


def test_one_deployment_per_group_and_ungrouped_source_plus_silver() -> None:
    plans = _by_name(plan_deployments(_catalog(), "catalog.yaml"))
    assert sorted(plans) == ["bronze-ingest/crm", "bronze-ingest/faker", "silver-merge/on-bronze-validated"]
    crm, faker = plans["bronze-ingest/crm"], plans["bronze-ingest/faker"]
    assert crm.parameters == {"sources": ["a", "b"], "catalog": "catalog.yaml"}
    assert faker.parameters == {"sources": ["faker"], "catalog": "catalog.yaml"}
    assert crm.work_pool == "test-pool" and faker.work_pool == "test-pool-other"
    assert crm.tags == ["lakehouse", "test", "bronze", "crm", "source:a", "source:b"]
    assert (crm.overlap, faker.overlap) == ("skip", "queue")
    assert [t["expect"] for t in faker.triggers] == [["erp.orders.exported"]]
    assert faker.triggers[0]["within"] == 300 and faker.triggers[0]["threshold"] == 2
    # job variables: the deployment's over the catalog's defaults, env merged key by key
    assert faker.job_variables == {"env": {"LOG_LEVEL": "DEBUG", "TEAM": "data"}, "working_dir": "/srv/faker"}
    assert crm.job_variables == {"env": {"LOG_LEVEL": "INFO", "TEAM": "data"}}
    silver = plans["silver-merge/on-bronze-validated"]
    assert silver.job_variables == {"env": {"LOG_LEVEL": "INFO", "TEAM": "data"}, "working_dir": "/srv/silver"}


def test_silver_trigger_reacts_only_to_this_catalogs_batches_and_passes_the_manifest() -> None:
    silver = _by_name(plan_deployments(_catalog(), None))["silver-merge/on-bronze-validated"]
    (trigger,) = silver.triggers
    assert trigger["expect"] == ["bronze.batches.validated"]
    assert trigger["match"] == {"prefect.resource.id": ["bronze.source.faker", "bronze.source.a", "bronze.source.b"]}
    assert trigger["parameters"] == {
        "manifests": {
            "__prefect_kind": "json",
            "value": {"__prefect_kind": "jinja", "template": "{{ event.payload.manifests | tojson }}"},
        },
        "silver": "{{ event.payload.silver_root }}",
    }
    assert trigger["name"] == "silver-merge/on-bronze-validated: on bronze.batches.validated"
    assert "once per bronze run and source (faker, a, b)" in trigger["description"]
    # no run limit: silver runs of different sources proceed side by side (one table's merges never overlap)
    assert silver.overlap == "parallel" and silver.entrypoint == SILVER_ENTRYPOINT


def test_runner_deployments_carry_schedules_triggers_limits_and_pools() -> None:
    plans = plan_deployments(_catalog(), None)
    deployments = {d.name: d for d in runner_deployments(plans)}
    faker, crm = deployments["faker"], deployments["crm"]
    assert faker.entrypoint == BRONZE_ENTRYPOINT and faker.work_pool_name == "test-pool-other"
    (interval,) = faker.schedules
    assert interval.schedule.interval == timedelta(minutes=30) and interval.active is False
    (cron,) = crm.schedules
    assert (cron.schedule.cron, cron.schedule.timezone, cron.active) == ("0 */6 * * *", "Europe/Madrid", True)
    assert crm.concurrency_limit == 1 and crm.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert faker.concurrency_options.collision_strategy.value == "ENQUEUE"
    silver = deployments["on-bronze-validated"]
    assert silver.concurrency_limit is None
    assert faker.storage is not None and faker.storage.to_pull_step() == {"deployments.steps.use_installed_project": {}}
    schema = faker._parameter_openapi_schema.model_dump(exclude_unset=True)
    assert schema["additionalProperties"] is False
    assert all(p.get("description") for p in schema["properties"].values())
    (trigger,) = faker.triggers
    assert trigger.expect == {"erp.orders.exported"} and trigger.within == timedelta(minutes=5)
    assert faker.job_variables == {"env": {"LOG_LEVEL": "DEBUG", "TEAM": "data"}, "working_dir": "/srv/faker"}
    served = {d.name: d for d in runner_deployments(plans, serve=True)}
    assert all(d.work_pool_name is None and not d.job_variables for d in served.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("sources: [a, b]", "sources: [a, nope]"), "group 'crm' lists unknown source 'nope'"),
        (("  - name: crm\n", "  - name: faker\n"), "group 'faker' has the name of a source"),
        (('cron: "0 */6 * * *"', 'cron: "every six hours"'), "is not a cron expression"),
        (("{interval: 30m, active: false}", "{interval: 30m, cron: '0 * * * *'}"), "exactly one of 'cron'"),
        (("min_interval: 1h", "min_interval: soon"), "is not a duration"),
        (("expect: [erp.orders.exported]", "expect: []"), "at least 1 item"),
        (("overlap: queue", "overlap: maybe"), "overlap"),
        (("    sources: [a, b]\n", "    sources: [a, b, faker]\n"), "move its 'deployment' there"),
    ],
)
def test_bad_deployment_settings_are_one_clear_line(change: tuple[str, str], message: str) -> None:
    text = _catalog_text()
    assert change[0] in text
    with pytest.raises(ConfigError, match=message) as info:
        parse_catalog(text.replace(*change), "test", {})
    assert "\n" not in str(info.value)


def test_source_in_two_groups_is_refused() -> None:
    text = _catalog_text().replace(
        "sources:\n  - name: faker", "  - name: other\n    sources: [b]\nsources:\n  - name: faker"
    )
    with pytest.raises(ConfigError, match="source 'b' is in groups 'crm' and 'other'"):
        parse_catalog(text, "test", {})


def test_committed_prefect_yaml_is_the_generated_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_WORK_POOL", raising=False)
    out = tmp_path / "prefect.yaml"
    assert deployments_main(["yaml", "--output", str(out)]) == 0
    assert (ROOT / "prefect.yaml").read_text() == out.read_text(), "regenerate: python -m deployments yaml"
    document = yaml.safe_load(out.read_text())
    assert document["pull"] == [{"deployments.steps.use_installed_project": {}}]
    assert [d["entrypoint"] for d in document["deployments"]] == [BRONZE_ENTRYPOINT, SILVER_ENTRYPOINT]
    assert document["deployments"][0]["schedules"] == [{"cron": "0 * * * *", "timezone": "UTC", "active": True}]


def test_list_prints_each_deployment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(_catalog_text())
    assert deployments_main(["list", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bronze-ingest/crm: cron 0 */6 * * * Europe/Madrid" in out
    assert "bronze-ingest/faker: every 30m; on event erp.orders.exported" in out
    assert "silver-merge/on-bronze-validated: on event bronze.batches.validated" in out


def test_register_without_a_server_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "deployments", "register"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: PREFECT_API_URL is not set") and result.stderr.count("\n") == 1


def test_bad_catalog_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(_catalog_text().replace("min_interval: 1h", "min_interval: soon"))
    assert deployments_main(["list", "--catalog", str(path)]) == 2
    assert "is not a duration" in capsys.readouterr().err


# --- against Prefect's test server ----------------------------------------------------------------------


def _client() -> Any:
    from prefect import get_client

    return get_client(sync_client=True)


def _automations_of(client: Any, deployment_id: Any) -> list[Any]:
    return [
        a
        for a in client.read_automations()
        if any(getattr(action, "deployment_id", None) == deployment_id for action in a.actions)
    ]


@pytest.mark.usefixtures("prefect_server")
def test_register_creates_pools_deployments_limits_and_triggers_idempotently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    pool = f"{prefix}pool"
    text = _catalog_text(prefix, pool=pool, silver=f"{prefix}silver")
    text += f"  - name: {prefix}airbyte\n    connection_name: Postgres to bronze\n"
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    monkeypatch.setenv("AIRBYTE_URL", "http://airbyte.internal:8000")
    monkeypatch.setenv("AIRBYTE_MAX_CONCURRENT_SYNCS", "3")

    assert deployments_main(["register", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"work pool {pool}: created (process)" in out
    assert "concurrency limit airbyte-syncs-airbyte.internal-8000: created (3 concurrent syncs)" in out

    with _client() as client:
        assert client.read_work_pool(pool).type == "process"
        assert client.read_work_pool(f"{pool}-other").base_job_template  # the process worker's template
        limit = client.read_global_concurrency_limit_by_name("airbyte-syncs-airbyte.internal-8000")
        assert limit.limit == 3
        crm = client.read_deployment_by_name(f"bronze-ingest/{prefix}crm")
        assert crm.entrypoint == BRONZE_ENTRYPOINT and crm.work_pool_name == pool
        assert crm.parameters == {"sources": [f"{prefix}a", f"{prefix}b"], "catalog": str(path)}
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in crm.schedules] == [
            ("0 */6 * * *", "Europe/Madrid", True)
        ]
        assert crm.global_concurrency_limit is not None and crm.global_concurrency_limit.limit == 1
        assert crm.concurrency_options is not None and crm.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        faker = client.read_deployment_by_name(f"bronze-ingest/{prefix}faker")
        assert [(s.schedule.interval, s.active) for s in faker.schedules] == [(timedelta(minutes=30), False)]
        assert faker.job_variables == {"env": {"LOG_LEVEL": "DEBUG", "TEAM": "data"}, "working_dir": "/srv/faker"}
        (faker_trigger,) = _automations_of(client, faker.id)
        assert faker_trigger.trigger.expect == {"erp.orders.exported"}
        silver = client.read_deployment_by_name(f"silver-merge/{prefix}silver")
        (silver_trigger,) = _automations_of(client, silver.id)
        assert silver_trigger.trigger.expect == {"bronze.batches.validated"}
        assert silver_trigger.description.startswith(f"Runs silver-merge/{prefix}silver once per bronze run")
        assert silver.global_concurrency_limit is None
        assert silver.pull_steps == [{"deployments.steps.use_installed_project": {}}]
        first_ids = {crm.id, faker.id, silver.id}
        automation_ids = {faker_trigger.id, silver_trigger.id}
    assert f"deployment bronze-ingest/{prefix}crm: created (" in out
    assert f"automation 'silver-merge/{prefix}silver: on bronze.batches.validated': created (" in out

    # Registering again changes nothing and says so, object by object: same deployments, same automations.
    assert deployments_main(["register", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"work pool {pool}: unchanged (process)" in out
    assert "concurrency limit airbyte-syncs-airbyte.internal-8000: unchanged (3 concurrent syncs)" in out
    for name in (f"bronze-ingest/{prefix}crm", f"bronze-ingest/{prefix}faker", f"silver-merge/{prefix}silver"):
        assert f"deployment {name}: unchanged (" in out
    # the two triggers' automations, and the one crashing runs that stopped sending heartbeats (deployments/zombies.py)
    assert out.count("automation ") == 3 and out.count("': unchanged (") == 3
    assert "created" not in out and "updated" not in out
    with _client() as client:
        again = {
            client.read_deployment_by_name(n).id
            for n in (f"bronze-ingest/{prefix}crm", f"bronze-ingest/{prefix}faker", f"silver-merge/{prefix}silver")
        }
        assert again == first_ids
        assert {a.id for a in _automations_of(client, silver.id) + _automations_of(client, faker.id)} == automation_ids

    # A schedule removed from the catalog is removed from the server too (Prefect keeps them otherwise); a changed
    # trigger updates its automation in place (same id: runs it started keep their link to it).
    path.write_text(
        text.replace("      schedules: [{interval: 30m, active: false}]\n", "").replace("threshold: 2", "threshold: 3")
    )
    assert deployments_main(["register", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"deployment bronze-ingest/{prefix}faker: updated schedules (" in out
    assert f"deployment bronze-ingest/{prefix}crm: unchanged (" in out
    assert f"automation 'bronze-ingest/{prefix}faker: trigger 1 (on erp.orders.exported)': updated (" in out
    with _client() as client:
        assert client.read_deployment_by_name(f"bronze-ingest/{prefix}faker").schedules == []
        assert len(client.read_deployment_by_name(f"bronze-ingest/{prefix}crm").schedules) == 1
        (updated,) = _automations_of(client, faker.id)
        assert updated.id == faker_trigger.id and updated.trigger.threshold == 3


@pytest.mark.usefixtures("prefect_server")
def test_register_reports_then_prunes_deployments_the_catalog_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}-"
    text = _catalog_text(prefix, pool=f"{prefix}pool", silver=f"{prefix}silver")
    path, other = tmp_path / "catalog.yaml", tmp_path / "other.yaml"
    path.write_text(text)
    other.write_text(_catalog_text(f"{prefix}o-", pool=f"{prefix}pool", silver=f"{prefix}o-silver"))  # same server
    assert deployments_main(["register", "--catalog", str(path)]) == 0
    assert deployments_main(["register", "--catalog", str(other)]) == 0
    with _client() as client:
        faker = client.read_deployment_by_name(f"bronze-ingest/{prefix}faker")
        assert len(_automations_of(client, faker.id)) == 1
    capsys.readouterr()

    # faker leaves the catalog (and with it its trigger): reported, kept
    before, after = text.split(f"  - name: {prefix}faker\n")
    path.write_text(before + after[after.index(f"  - name: {prefix}a\n") :])
    assert deployments_main(["register", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"deployment bronze-ingest/{prefix}faker: no longer in the catalog, kept (--prune deletes it)" in out
    assert f"{prefix}o-" not in out  # the other catalog's deployments are not this catalog's to judge
    with _client() as client:
        assert client.read_deployment_by_name(f"bronze-ingest/{prefix}faker").id == faker.id

    assert deployments_main(["register", "--catalog", str(path), "--prune"]) == 0
    out = capsys.readouterr().out
    assert f"deployment bronze-ingest/{prefix}faker: deleted (no longer in the catalog)" in out
    assert out.count(": deleted") == 1
    with _client() as client:
        with pytest.raises(ObjectNotFound):
            client.read_deployment_by_name(f"bronze-ingest/{prefix}faker")
        assert _automations_of(client, faker.id) == []  # its trigger went with it
        for kept in (f"bronze-ingest/{prefix}crm", f"silver-merge/{prefix}silver", f"bronze-ingest/{prefix}o-faker"):
            client.read_deployment_by_name(kept)
    assert deployments_main(["register", "--catalog", str(path), "--prune"]) == 0
    assert "deleted" not in capsys.readouterr().out


@pytest.mark.usefixtures("prefect_server")
def test_job_variables_the_pool_rejects_fail_before_any_deployment_is_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"j{uuid.uuid4().hex[:6]}-"
    path = tmp_path / "catalog.yaml"
    text = _catalog_text(prefix, pool=f"{prefix}pool", silver=f"{prefix}silver")
    path.write_text(text.replace("working_dir: /srv/faker", "env: not-a-mapping"))
    assert deployments_main(["register", "--catalog", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: deployment bronze-ingest/{prefix}faker: job_variables for pool {prefix}pool-other:")
    assert "'env'" in err and len(err.splitlines()) == 1
    with _client() as client:  # crm comes first in the catalog, and it was not applied either
        for name in (f"bronze-ingest/{prefix}crm", f"silver-merge/{prefix}silver"):
            with pytest.raises(ObjectNotFound):
                client.read_deployment_by_name(name)


@pytest.mark.usefixtures("prefect_server")
def test_one_bronze_event_creates_one_silver_run_with_every_manifest(tmp_path: Path) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events import emit_event

    prefix = f"e{uuid.uuid4().hex[:6]}-"
    path = tmp_path / "catalog.yaml"
    path.write_text(_catalog_text(prefix, pool=f"{prefix}pool", silver=f"{prefix}silver"))
    assert deployments_main(["register", "--catalog", str(path)]) == 0
    with _client() as client:
        silver = client.read_deployment_by_name(f"silver-merge/{prefix}silver")
    manifests = [f"s3://bronze/airbyte/{prefix}faker/{s}/_manifests/42.json" for s in ("users", "products")]
    # Another catalog's batches must not start this catalog's silver run.
    emit_event(**batches_event("elsewhere", ["s3://x/airbyte/elsewhere/u/_manifests/1.json"], "s3://x", "s3://silver"))
    emit_event(**batches_event(f"{prefix}faker", manifests, "s3://bronze", "s3://silver/lake"))
    deadline = time.monotonic() + 60
    runs: list[Any] = []
    while time.monotonic() < deadline and not runs:
        time.sleep(1)
        with _client() as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[silver.id])))
    assert len(runs) == 1, "the bronze.batches.validated event did not create one silver flow run"
    assert runs[0].parameters["manifests"] == manifests
    assert runs[0].parameters["silver"] == "s3://silver/lake"
    assert runs[0].parameters["catalog"] == str(path)


@pytest.mark.usefixtures("prefect_server")
def test_prefect_deploy_all_from_the_generated_prefect_yaml(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    prefix = f"y{uuid.uuid4().hex[:6]}-"
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(_catalog_text(prefix, pool=f"{prefix}pool", silver=f"{prefix}silver"))
    assert deployments_main(["yaml", "--catalog", str(catalog), "--output", str(tmp_path / "prefect.yaml")]) == 0
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    for pool in (f"{prefix}pool", f"{prefix}pool-other"):  # prefect deploy refuses pools that do not exist
        subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "work-pool", "create", pool, "--type", "process"],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
        )
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with _client() as client:
        crm = client.read_deployment_by_name(f"bronze-ingest/{prefix}crm")
        assert crm.entrypoint == BRONZE_ENTRYPOINT and crm.work_pool_name == f"{prefix}pool"
        assert crm.parameters == {"sources": [f"{prefix}a", f"{prefix}b"], "catalog": str(catalog)}
        assert [(s.schedule.cron, s.schedule.timezone) for s in crm.schedules] == [("0 */6 * * *", "Europe/Madrid")]
        assert crm.concurrency_options is not None and crm.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        faker = client.read_deployment_by_name(f"bronze-ingest/{prefix}faker")
        assert faker.work_pool_name == f"{prefix}pool-other"
        assert faker.job_variables == {"env": {"LOG_LEVEL": "DEBUG", "TEAM": "data"}, "working_dir": "/srv/faker"}
        silver = client.read_deployment_by_name(f"silver-merge/{prefix}silver")
        (trigger,) = _automations_of(client, silver.id)
        assert trigger.trigger.expect == {"bronze.batches.validated"}


def test_default_pool_is_the_catalogs_then_prefect_work_pool_then_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = parse_catalog("sources: [{name: f, connector: {package: airbyte-source-faker}}]", "test", {})
    monkeypatch.delenv("PREFECT_WORK_POOL", raising=False)
    assert {p.work_pool for p in plan_deployments(bare, None)} == {"lakehouse-process"}
    monkeypatch.setenv("PREFECT_WORK_POOL", "compose-pool")
    assert {p.work_pool for p in plan_deployments(bare, None)} == {"compose-pool"}
    assert {p.work_pool for p in plan_deployments(_catalog(), None)} == {"test-pool", "test-pool-other"}


def test_entrypoints_registered_by_earlier_versions_still_resolve() -> None:
    """Deployments registered before the flows moved into packages name ``flows.bronze.bronze_ingest``."""
    from prefect.utilities.importtools import import_object

    from flows.bronze.flow import bronze_ingest
    from flows.silver.flow import silver_merge

    assert import_object("flows.bronze.bronze_ingest") is bronze_ingest
    assert import_object("flows.silver.silver_merge") is silver_merge
    assert import_object(BRONZE_ENTRYPOINT) is bronze_ingest
