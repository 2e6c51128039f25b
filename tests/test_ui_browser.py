"""What a data engineer reads in the Prefect UI, in a real browser.

A real ``prefect server start`` (with its UI) and a process worker; the catalog registered with ``python -m
deployments register``; the bronze deployment run through the worker on the real faker connector into an S3 lake
(SeaweedFS), with one stream failing two checks and one passing. Then headless Chromium renders the pages a user
opens, in both of Prefect's UIs (the V2 UI is where the server's front page leads; V1 is a click away), and the
assertions read their text: the run page (name, tags, state), the failed validate task (V2 also shows its error
log lines: every failed check), the failing batch's own artifact (every check), the links artifact (targets a
browser can open: the S3 console), the Run form (every parameter explained). The silver run the bronze run
started, and a run with a bad parameter, are checked through the API.

Skipped, saying why, when Debian's ``chromium`` is not installed; ``.ci/run`` installs it and sets
``UI_BROWSER_REQUIRED=1``, which turns that skip into a failure. Set ``LAKEHOUSE_UI_SCREENSHOTS=docs`` to also
save screenshots of those pages (the README's come from there).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAKER_SOURCE
from support.browser import Page, chromium, render, screenshot
from support.live_prefect import LivePrefect, live_prefect, wait_for
from support.seaweed import S3Endpoint

pytestmark = [pytest.mark.connector]
NO_CHROMIUM = "headless Chromium is not installed (apt-get install -y chromium; .ci/run installs it)"

POOL = "ui-pool"
UIS = pytest.mark.parametrize("ui", ["", "/v2"], ids=["v1", "v2"])
CONSOLE = "http://console.example:9001"
FAILED_CHECKS = ["min_records", "accepted_values(gender)"]


@dataclass
class UiRun:
    """The stack, and what the bronze run left on it."""

    stack: LivePrefect
    bronze_run: Any
    silver_runs: list[Any]
    failed_task: Any
    artifacts: dict[str, Any]
    deployment_id: Any
    bronze_prefix: str


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory: pytest.TempPathFactory, s3: S3Endpoint) -> Iterator[UiRun]:
    if chromium() is None:
        if os.environ.get("UI_BROWSER_REQUIRED") == "1":
            pytest.fail(f"{NO_CHROMIUM}, and UI_BROWSER_REQUIRED=1 says these tests must run here")
        pytest.skip(NO_CHROMIUM)
    root = tmp_path_factory.mktemp("ui")
    users = {"name": "users", "checks": {"min_records": 5000, "accepted_values": {"gender": ["Nobody"]}}}
    source = {**FAKER_SOURCE, "streams": [users, {"name": "products"}]}
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"deployments": {"work_pool": POOL}, "sources": [source]}))
    prefix = f"ui-{uuid.uuid4().hex[:8]}"
    lake = {
        **s3.env(),
        "BRONZE_URI": f"s3://bronze/{prefix}",
        "SILVER_URI": f"s3://silver/{prefix}",
        "LAKE_CONSOLE_URL": CONSOLE,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    with live_prefect(root / "prefect", ui=True) as stack:
        stack.register(catalog)
        stack.start_worker(POOL, **lake)
        run = stack.run_deployment("bronze-ingest/faker")
        bronze_run = stack.wait_final(run.id, timeout=600)
        silver_runs = wait_for(
            "the silver run the bronze run started",
            lambda: [r for r in stack.runs_of("silver-merge/on-bronze-validated") if r.state.is_final()] or None,
            timeout=180,
            every=1.0,
        )
        with stack.client() as client:
            from prefect.client.schemas.filters import (
                ArtifactFilter,
                ArtifactFilterFlowRunId,
                FlowRunFilter,
                FlowRunFilterId,
            )

            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[bronze_run.id])))
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[bronze_run.id]))
            )
            deployment = client.read_deployment_by_name("bronze-ingest/faker")
        failed_task = next(t for t in tasks if t.name == "validate-faker-users")
        yield UiRun(
            stack,
            bronze_run,
            silver_runs,
            failed_task,
            {a.key: a for a in artifacts if a.key},
            deployment.id,
            f"s3://bronze/{prefix}",
        )


def _save(run: UiRun, url: str, name: str, height: int = 1000) -> None:
    folder = os.environ.get("LAKEHOUSE_UI_SCREENSHOTS")
    if folder:
        screenshot(url, Path(folder) / f"{name}.png", height=height)


def _page(run: UiRun, path: str, must_show: list[str], screenshot_as: str | None = None) -> Page:
    url = f"{run.stack.ui_url}{path}"
    page = render(url, must_show)
    missing = [s for s in must_show if s not in page.text]
    assert not missing, f"{url} does not show {missing}; it shows: {page.text[:3000]}"
    if screenshot_as:
        _save(run, url, f"{screenshot_as}-v2" if path.startswith("/v2/") else screenshot_as)
    return page


@UIS
def test_the_run_page_names_the_run_and_its_streams_and_shows_it_failed(ui_run: UiRun, ui: str) -> None:
    run = ui_run.bronze_run
    assert run.state.is_failed()
    assert re.fullmatch(r"faker-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", run.name)
    tags = ["source:faker", "stream:faker.users", "stream:faker.products"]
    _page(ui_run, f"{ui}/runs/flow-run/{run.id}", [run.name, "Failed", *tags], "ui-bronze-run")
    message = run.state.message
    assert "\n" not in message and message.count("faker.users") == 1
    assert all(f"check '{name}' failed" in message for name in FAILED_CHECKS)
    assert "faker.products" not in message


@UIS
def test_the_failed_batch_has_a_failed_task(ui_run: UiRun, ui: str) -> None:
    assert ui_run.failed_task.state.is_failed()
    # the V2 page lists the task's logs: an error line per failed check
    logged = [f"faker.users: check '{name}' failed" for name in FAILED_CHECKS] if ui else []
    _page(ui_run, f"{ui}/runs/task-run/{ui_run.failed_task.id}", ["validate-faker-users", "Failed", *logged], "ui-task")


@UIS
def test_the_failing_batch_artifact_shows_every_check(ui_run: UiRun, ui: str) -> None:
    artifact = ui_run.artifacts["bronze-checks-faker-users"]
    page = _page(
        ui_run,
        f"{ui}/artifacts/artifact/{artifact.id}",
        [*FAILED_CHECKS, "files_listed", "row_count", "30 rows, at least 5000 required"],
        "ui-failed-checks",
    )
    assert "2 of" in page.text and "check(s) failed" in page.text
    # the run's state message is on the artifact page too
    assert "BronzeRunFailed: 1 of 2 stream" in page.text


def test_the_summary_table_starts_with_status_and_checks(ui_run: UiRun) -> None:
    artifact = ui_run.artifacts["bronze-ingest-summary"]
    page = _page(ui_run, f"/artifacts/artifact/{artifact.id}", ["failed_validation", "handed_off"], "ui-summary")
    header = page.text[page.text.index("status") :]
    assert header.split()[:5] == ["status", "checks", "source", "stream", "detail"]


@UIS
def test_links_open_the_s3_console_never_a_relative_path(ui_run: UiRun, ui: str) -> None:
    artifact = ui_run.artifacts["bronze-ingest-tables"]
    page = _page(ui_run, f"{ui}/artifacts/artifact/{artifact.id}", ["Bronze", ui_run.bronze_prefix], "ui-links")
    lake_links = [(href, text) for href, text in page.links() if text.startswith("s3://")]
    assert len(lake_links) == 4  # bronze prefix and silver table of both streams
    for href, text in lake_links:
        assert href.startswith(f"{CONSOLE}/browser/"), (href, text)
    users = f"{ui_run.bronze_prefix}/airbyte/faker/users/"
    bucket, key = users[len("s3://") :].split("/", 1)
    assert (f"{CONSOLE}/browser/{bucket}/{key.replace('/', '%2F')}", users) in lake_links


@UIS
def test_the_run_form_explains_every_parameter(ui_run: UiRun, ui: str) -> None:
    explained = [
        "Names of the catalog's sources to sync. Left empty: every source of the catalog.",
        "Path of the YAML catalog on the worker (not on your machine).",
        "Left empty: the worker's BRONZE_URI, else ./lakehouse/bronze",
        "Left empty: the worker's SILVER_URI, else ./lakehouse/silver.",
        "Sync even when a source's min_interval since its last successful sync has not passed. Off by default",
    ]
    page = _page(ui_run, f"{ui}/deployments/deployment/{ui_run.deployment_id}/run", explained, "ui-run-form")
    assert 'Property is type "None"' not in page.text


def test_one_silver_run_merged_every_handed_off_batch(ui_run: UiRun) -> None:
    (silver,) = ui_run.silver_runs
    assert silver.state.is_completed(), silver.state.message
    sync_id = silver.parameters["manifests"][0].rsplit("/", 1)[-1].removesuffix(".json")
    assert silver.name == f"silver-faker.products-{sync_id}"  # users failed: products is the one batch handed off
    assert {"source:faker", "stream:faker.products"} <= set(silver.tags)


def test_a_bad_parameter_fails_the_run_with_one_line(ui_run: UiRun) -> None:
    run = ui_run.stack.run_deployment("bronze-ingest/faker", {"sources": ["nope"]})
    done = ui_run.stack.wait_final(run.id, timeout=300)
    assert done.state.is_failed()
    assert done.state.message == (
        "Flow run encountered an exception: ConfigError: unknown source 'nope'; the catalog has: faker"
    )
    with ui_run.stack.client() as client, pytest.raises(Exception, match="'sourcs' was unexpected"):
        client.create_flow_run_from_deployment(ui_run.deployment_id, parameters={"sourcs": ["faker"]})
