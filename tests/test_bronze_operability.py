"""Running bronze the way operators do: min_interval skips (and --force), --dry-run, artifacts that link
each stream to its bronze prefix and silver table, and the project's own log lines reaching Prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAKER_SOURCE
from test_bronze_flow import latest_artifact_rows

from flows.bronze.flow import LINKS_ARTIFACT_KEY
from flows.cli import bronze_main as main

pytestmark = [pytest.mark.connector, pytest.mark.usefixtures("prefect_server")]
ROOT = Path(__file__).resolve().parent.parent


def _catalog(path: Path, **overrides: Any) -> Path:
    source = {**FAKER_SOURCE, "streams": [{"name": "users"}], **overrides}
    path.write_text(yaml.safe_dump({"sources": [source]}))
    return path


def _lake(tmp_path: Path) -> list[str]:
    return ["--bronze", str(tmp_path / "bronze"), "--silver", str(tmp_path / "silver")]


def _manifests(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "bronze" / "airbyte" / "faker" / "users" / "_manifests").glob("*.json"))


def test_min_interval_skips_a_run_too_soon_after_success_and_force_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = _catalog(tmp_path / "catalog.yaml", min_interval="1h")
    args = ["--catalog", str(catalog), *_lake(tmp_path), "--no-silver"]
    assert main(args) == 0
    record = json.loads((tmp_path / "bronze/_state/airbyte/faker/last_success.json").read_text())
    assert record["sync_id"] == json.loads(_manifests(tmp_path)[0].read_text())["sync_id"]
    capsys.readouterr()

    assert main(args) == 0  # too soon: skipped, not failed, nothing written
    out = capsys.readouterr().out
    assert "faker: skipped: last successful sync finished" in out and "min_interval is 1h" in out
    assert len(_manifests(tmp_path)) == 1
    (row,) = latest_artifact_rows()
    assert row["status"] == "skipped"

    assert main([*args, "--force"]) == 0
    assert len(_manifests(tmp_path)) == 2


def test_a_failed_sync_does_not_count_as_the_last_success(tmp_path: Path) -> None:
    # 30 users cannot meet min_records 1000: validation fails, so the sync is not a success.
    catalog = _catalog(
        tmp_path / "catalog.yaml",
        min_interval="1h",
        streams=[{"name": "users", "checks": {"min_records": 1000}}],
    )
    args = ["--catalog", str(catalog), *_lake(tmp_path), "--no-silver"]
    assert main(args) == 1
    assert not (tmp_path / "bronze/_state/airbyte/faker/last_success.json").exists()
    assert main(args) == 1  # not skipped: there was no successful sync to be too close to


def test_dry_run_shows_what_would_run_and_writes_nothing(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "catalog.yaml", min_interval="2h")
    result = subprocess.run(
        [sys.executable, "-m", "flows.bronze", "--catalog", str(catalog), *_lake(tmp_path), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dry run: nothing is synced or written.")
    assert "faker: embedded connector airbyte-source-faker==7.2.1; streams: users" in lines
    assert f"  bronze: {tmp_path / 'bronze'}/airbyte/faker/<stream>/" in lines
    assert "  would sync (min_interval 2h: not too soon)" in lines
    assert lines[-1].startswith("then silver: merge the handed-off batches into")
    assert not (tmp_path / "bronze").exists() and not (tmp_path / "silver").exists()


def test_artifacts_link_each_stream_to_its_bronze_prefix_and_silver_table(tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    catalog = _catalog(tmp_path / "catalog.yaml")
    assert main(["--catalog", str(catalog), *_lake(tmp_path), "--no-silver"]) == 0
    (row,) = latest_artifact_rows()
    assert row["bronze"] == f"{tmp_path / 'bronze'}/airbyte/faker/users/"
    assert row["silver"] == f"{tmp_path / 'silver'}/faker/users"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[LINKS_ARTIFACT_KEY]))
        )
    markdown = max(artifacts, key=lambda a: a.created).data
    # local locations are plain text: a link to a local path would open the Prefect server's "Page not found"
    assert f"`{row['bronze']}`" in markdown and f"`{row['silver']}`" in markdown and "](" not in markdown


def test_project_log_lines_reach_the_prefect_api() -> None:
    """pyproject's [tool.prefect] logging.extra_loggers ships lakehouse_ingest's own loggers to the run's logs."""
    import logging
    import time
    import uuid

    from prefect import flow, get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    marker = f"marker-{uuid.uuid4().hex}"

    @flow
    def logs_from_the_core() -> None:
        logging.getLogger("lakehouse_ingest.sources.airbyte.syncs").warning("core says %s", marker)

    state = logs_from_the_core(return_state=True)
    deadline = time.monotonic() + 20
    messages: list[str] = []
    while time.monotonic() < deadline and not any(marker in m for m in messages):
        time.sleep(0.5)
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        messages = [log.message for log in logs]
    assert f"core says {marker}" in messages
