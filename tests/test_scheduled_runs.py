"""Schedules really fire: a full `prefect server start` (with its scheduler service, which the test harness's
ephemeral server does not run) on a temporary database, the catalog registered with
`python -m deployments register`, and scheduled flow runs of the bronze deployment appearing on their own.

This guards the dependency pins too: Prefect 3.8.8's scheduler failed every pass with SQLAlchemy 2.1
("Can't evaluate bulk DML statement"), so schedules silently never ran; 3.9.1's passes on 2.0 and 2.1 alike.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_registered_schedule_creates_flow_runs(tmp_path: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)  # noqa: S310 (our http URL)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        catalog = tmp_path / "catalog.yaml"
        source = {
            "name": "scheduled",
            "connector": {"package": "airbyte-source-faker"},
            "deployment": {"schedules": [{"interval": "1h"}]},
        }
        catalog.write_text(yaml.safe_dump({"deployments": {"silver": {"enabled": False}}, "sources": [source]}))
        client_env = {**env, "PREFECT_API_URL": api}
        registered = subprocess.run(
            [sys.executable, "-m", "deployments", "register", "--catalog", str(catalog)],
            cwd=ROOT,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert registered.returncode == 0, registered.stderr
        count_runs = (
            "from prefect import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    d = c.read_deployment_by_name('bronze-ingest/scheduled')\n"
            "    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId\n"
            "    runs = c.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])))\n"
            "    print(sum(r.state_type.value == 'SCHEDULED' for r in runs))\n"
        )
        scheduled = 0
        deadline = time.monotonic() + 60
        while scheduled == 0 and time.monotonic() < deadline:
            time.sleep(2)
            out = subprocess.run(
                [sys.executable, "-c", count_runs], env=client_env, capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 0, out.stderr[-2000:]
            scheduled = int(out.stdout.strip().splitlines()[-1])
        server_log = (tmp_path / "server.log").read_text()
        assert scheduled >= 1, "the scheduler created no runs:\n" + server_log[-3000:]
        assert "Can't evaluate bulk DML" not in server_log
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
