"""A real Prefect deployment stack on loopback, as a user runs it: ``prefect server start`` (scheduler, triggers,
automations and, optionally, the UI) on its own SQLite database, ``python -m deployments register``, and a process
worker polling the catalog's pool. Used by the browser tests and ``bench/silver_latency.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """``probe()``'s first result that is not None; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class LivePrefect:
    """A running ``prefect server start`` (and workers started on it) under ``root``."""

    root: Path
    port: int
    ui: bool
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process talking to this server (the caller's, minus its Prefect API)."""
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(
            PREFECT_API_URL=self.api,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PYTHONPATH=str(ROOT),
        )
        env.update(extra)
        return env

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(command, env=env, cwd=self.root, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append((name, process))
        return process

    def start_server(self, timeout: float = 120) -> None:
        env = self.env(
            PREFECT_HOME=str(self.root / "server-home"),
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.root / 'prefect.db'}",
            PREFECT_UI_ENABLED="true" if self.ui else "false",
            PREFECT_UI_API_URL=self.api,
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        )
        del env["PREFECT_API_URL"]
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        process = self._spawn("server", command, env)

        def healthy() -> bool | None:
            assert process.poll() is None, "prefect server exited:\n" + self.log("server")[-3000:]
            try:
                urllib.request.urlopen(f"{self.api}/health", timeout=2)  # noqa: S310 (our loopback http URL)
            except OSError:
                return None
            return True

        wait_for("prefect server start", healthy, timeout)

    def register(self, catalog: Path, **env: str) -> str:
        """``python -m deployments register --catalog``; its output (it must succeed)."""
        done = subprocess.run(
            [sys.executable, "-m", "deployments", "register", "--catalog", str(catalog)],
            cwd=ROOT,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start_worker(self, pool: str, **env: str) -> None:
        """A process worker on ``pool`` (its own Prefect home; ``env`` adds the lake's settings)."""
        worker_env = self.env(
            PREFECT_HOME=str(self.root / "worker-home"),
            PREFECT_LOGGING_EXTRA_LOGGERS="lakehouse_ingest",  # flow runs start outside the repo (no pyproject)
            **env,
        )
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        self._spawn(f"worker-{pool}", command, worker_env)

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A sync Prefect client on this server (whatever server the calling process is set up for)."""
        from prefect import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api}), get_client(sync_client=True) as client:
            yield client

    def run_deployment(self, full_name: str, parameters: dict[str, Any] | None = None) -> Any:
        """Create a run of ``full_name`` now (the worker picks it up); the flow run."""
        with self.client() as client:
            deployment = client.read_deployment_by_name(full_name)
            return client.create_flow_run_from_deployment(deployment.id, parameters=parameters or {})

    def wait_final(self, run_id: Any, timeout: float) -> Any:
        """The flow run once it reached a final state."""

        def final() -> Any:
            with self.client() as client:
                run = client.read_flow_run(run_id)
            return run if run.state is not None and run.state.is_final() else None

        try:
            return wait_for(f"flow run {run_id}", final, timeout, every=1.0)
        except AssertionError as exc:
            logs = "\n".join(f"--- {name}\n{self.log(name)[-2500:]}" for name, _ in self.processes[1:])
            raise AssertionError(f"{exc}\n{logs}") from None

    def runs_of(self, full_name: str) -> list[Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        with self.client() as client:
            deployment = client.read_deployment_by_name(full_name)
            return list(
                client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
            )

    def stop(self) -> None:
        for _, process in reversed(self.processes):  # workers first, the server last
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def live_prefect(root: Path, ui: bool = False) -> Iterator[LivePrefect]:
    """A started server under ``root``; every process it started is stopped on the way out."""
    root.mkdir(parents=True, exist_ok=True)
    stack = LivePrefect(root, free_port(), ui)
    try:
        stack.start_server()
        yield stack
    finally:
        stack.stop()
