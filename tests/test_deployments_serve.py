"""`python -m deployments serve` end to end on the embedded engine: a bronze deployment run syncs the real
faker connector, its bronze.batch.validated events trigger the silver deployment, and the silver Delta
table ends up with exactly the rows that landed in bronze. All on Prefect's test server, served by one
local process (no worker), the way a newcomer runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import FAKER_SOURCE
from deltalake import DeltaTable

pytestmark = [pytest.mark.connector, pytest.mark.usefixtures("prefect_server")]


def _wait_for(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_serve_runs_bronze_and_the_event_triggered_silver(tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    name = f"s{uuid.uuid4().hex[:6]}"
    source = {**FAKER_SOURCE, "name": name, "streams": [{"name": "users"}]}
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"deployments": {"silver": {"name": f"{name}-silver"}}, "sources": [source]}))
    bronze, silver = tmp_path / "bronze", tmp_path / "silver"
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "BRONZE_URI": str(bronze),
        "SILVER_URI": str(silver),
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "deployments", "serve", "--catalog", str(catalog)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def deployment(full_name: str) -> Any:
            with get_client(sync_client=True) as client:
                try:
                    return client.read_deployment_by_name(full_name)
                except ObjectNotFound:
                    return None

        _wait_for("the served deployments", lambda: deployment(f"silver-merge/{name}-silver"), 60)
        assert deployment(f"bronze-ingest/{name}").work_pool_name is None  # served, not on a pool

        run = run_deployment(f"bronze-ingest/{name}", timeout=300, poll_interval=2)
        assert run.state is not None and run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]

        landed = sorted((bronze / "airbyte" / name / "users").glob("*.parquet"))
        assert landed and sum(pq.read_metadata(p).num_rows for p in landed) == 30

        silver_deployment = deployment(f"silver-merge/{name}-silver")

        def silver_done() -> Any:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[silver_deployment.id]))
                )
            done = [r for r in runs if r.state is not None and r.state.is_final()]
            return done or None

        (silver_run,) = _wait_for("the event-triggered silver run", silver_done, 180)
        assert silver_run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        (manifest,) = silver_run.parameters["manifests"]
        assert manifest.endswith(".json") and f"airbyte/{name}/users/_manifests/" in manifest
        table = DeltaTable(str(silver / name / "users")).to_pyarrow_table()
        assert table.num_rows == 30
        assert sorted(table.column("id").to_pylist()) == list(range(1, 31))
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
