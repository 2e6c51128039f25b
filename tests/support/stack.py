"""The project's compose stack driven from a test, through the Docker API only (``docker`` and ``docker compose``).

``Compose`` runs ``docker compose`` on the project's own docker-compose.yml plus the test-only override
(tests/stack/compose.test.yml) under its own project name, with an env file made from .env.example.
``HealthTicker`` stands in for systemd: Podman (4.x, as on these machines) runs container health checks from
systemd timers, and where no systemd runs, a health check never runs on its own, so ``depends_on: service_healthy``
would wait forever. The ticker runs ``podman healthcheck run`` for each running container of the project at that
container's own interval; Podman then keeps the status, failing streak and start period exactly as it would.
With Docker Engine (which runs health checks itself) no ticker is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
TEST_OVERRIDE = ROOT / "tests" / "stack" / "compose.test.yml"
ENV_EXAMPLE = ROOT / ".env.example"
BASE_IMAGE = os.environ.get("STACK_TEST_BASE_IMAGE", "localhost/debian-python:3.11")
SETUP_HINT = "tests/stack/setup-runtime.sh, which .ci/run runs, then export DOCKER_HOST as it prints"

__all__ = [
    "BASE_IMAGE",
    "Compose",
    "ComposeError",
    "HealthTicker",
    "docker",
    "docker_unavailable_reason",
    "engine_is_podman",
    "env_from_example",
]


class ComposeError(RuntimeError):
    """A docker or docker compose command failed; the message names it and ends with its output."""


def _run(
    args: list[str], timeout: float, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
        )
    except subprocess.TimeoutExpired as exc:
        raise ComposeError(f"{' '.join(args[:6])}: no answer within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise ComposeError(f"{' '.join(args[:8])} exited {result.returncode}:\n{tail}")
    return result


def docker(*args: str, timeout: float = 120) -> str:
    """``docker ARGS``'s standard output; ComposeError (naming the command) when it fails."""
    return _run(["docker", *args], timeout=timeout).stdout


def docker_unavailable_reason() -> str | None:
    """Why the stack cannot run here (one line), or None when a Docker API, compose and the base image answer."""
    if shutil.which("docker") is None:
        return f"no docker CLI on PATH (set up: {SETUP_HINT})"
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return f"no Docker API: DOCKER_HOST is unset and /var/run/docker.sock is missing (set up: {SETUP_HINT})"
    checks = [
        (["docker", "info", "--format", "{{.ServerVersion}}"], "no Docker API answers"),
        (["docker", "compose", "version"], "the docker compose plugin is missing"),
        (["docker", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE], f"base image {BASE_IMAGE} is missing"),
    ]
    for args, problem in checks:
        try:
            result = _run(args, timeout=60, check=False)
        except ComposeError as exc:
            return f"{problem}: {exc}"
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            return f"{problem} ({last[0][:160]}); set up: {SETUP_HINT}"
    return None


def engine_is_podman() -> bool:
    """True when the Docker API is served by Podman (whose health checks need systemd timers)."""
    result = _run(["docker", "version", "--format", "{{json .Server.Components}}"], timeout=60)
    return "podman" in result.stdout.lower()


def env_from_example(example: Path, dest: Path) -> dict[str, str]:
    """Write ``dest`` from .env.example as a user would fill it in: every change-me value replaced by a random one.

    Returns the values written in place of the placeholders (the secrets), so a test can look for them.
    """
    replaced: dict[str, str] = {}
    lines = []
    for line in example.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and "change-me" in value:
            value = f"stack-{secrets.token_hex(12)}"
            replaced[name.strip()] = value
        lines.append(f"{name}{sep}{value}" if sep else line)
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return replaced


@dataclass
class Compose:
    """``docker compose`` on the project's file plus the test override, as project ``project``."""

    project: str
    env_file: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    files: tuple[Path, ...] = (COMPOSE_FILE, TEST_OVERRIDE)

    def command(self, *args: str) -> list[str]:
        files = [part for f in self.files for part in ("-f", str(f))]
        return [
            "docker",
            "compose",
            "--project-name",
            self.project,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(self.env_file),
            *files,
            *args,
        ]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(self.command(*args), timeout=timeout, check=check, env=self.extra_env)

    def ps(self) -> dict[str, dict[str, Any]]:
        """Every container of the project, running or not, by service name."""
        out = self.run("ps", "--all", "--format", "json", timeout=60).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
        return {row["Service"]: row for row in rows}

    def container_ids(self) -> list[str]:
        return self.run("ps", "--all", "--quiet", timeout=60).stdout.split()

    def port(self, service: str, port: int) -> str:
        """``host:port`` where ``service``'s ``port`` is published."""
        out = self.run("port", service, str(port), timeout=60).stdout.strip()
        if not out:
            raise ComposeError(f"{service}: port {port} is not published")
        return out.splitlines()[0]

    def logs(self, *services: str) -> str:
        return self.run("logs", "--no-color", "--no-log-prefix", *services, timeout=120).stdout

    def diagnosis(self) -> str:
        """For every container of the project that is not healthy or running: its status, its last health check
        outputs and the tail of its logs. Appended to a failed ``up`` so CI's output says why, not just that."""
        lines: list[str] = []
        try:
            state = self.ps()
        except ComposeError as exc:
            return f"(no diagnosis: {exc})"
        for service, row in sorted(state.items()):
            if row.get("Health") in ("healthy", "") and row.get("State") == "running":
                continue
            if row.get("State") == "exited" and row.get("ExitCode") == 0:
                continue
            lines.append(f"--- {service}: {row.get('Status') or row.get('State')}")
            with contextlib.suppress(ComposeError, json.JSONDecodeError, KeyError, IndexError, TypeError):
                inspected = json.loads(_run(["docker", "inspect", row["ID"]], timeout=60).stdout)[0]
                state_of = inspected.get("State") or {}
                health = state_of.get("Health") or state_of.get("Healthcheck")
                for check in ((health or {}).get("Log") or [])[-3:]:
                    output = " ".join(str(check.get("Output", "")).split())[:300]
                    lines.append(f"    health check exit {check.get('ExitCode')}: {output}")
            with contextlib.suppress(ComposeError):
                tail = self.run("logs", "--no-color", "--tail", "25", service, timeout=60, check=False).stdout
                lines.extend(f"    {line}" for line in tail.splitlines())
        return "\n".join(lines)

    def wait_for(self, services: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Wait until each long-running service is healthy; raise naming the ones that are not."""
        wanted = set(services)
        deadline = time.monotonic() + timeout
        while True:
            state = self.ps()
            pending = {s for s in wanted if state.get(s, {}).get("Health") != "healthy"}
            if not pending:
                return state
            if time.monotonic() > deadline:
                summary = ", ".join(f"{s}: {state.get(s, {}).get('Status', 'no container')}" for s in sorted(pending))
                raise ComposeError(f"not healthy after {timeout:.0f} s: {summary}")
            time.sleep(2)


def _seconds(nanoseconds: int | None, default: float) -> float:
    return nanoseconds / 1e9 if nanoseconds else default


@dataclass
class HealthTicker:
    """Runs ``podman healthcheck run`` for each running container of ``compose``'s project at its interval."""

    compose: Compose
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _due: dict[str, float] = field(default_factory=dict)
    checks_run: int = 0

    def __enter__(self) -> HealthTicker:
        self._thread = threading.Thread(target=self._loop, name="health-ticker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            # Containers come and go during up and down: a failed look is retried at the next tick.
            with contextlib.suppress(ComposeError, json.JSONDecodeError, OSError):
                self._tick()
            self._stop.wait(0.5)

    def _tick(self) -> None:
        ids = _run(
            ["docker", "ps", "--quiet", "--filter", f"label=com.docker.compose.project={self.compose.project}"],
            timeout=30,
        ).stdout.split()
        if not ids:
            return
        now = time.monotonic()
        for container in json.loads(_run(["docker", "inspect", *ids], timeout=30).stdout):
            check = (container.get("Config") or {}).get("Healthcheck") or {}
            test = check.get("Test") or []
            if not test or test == ["NONE"]:
                continue
            cid = container["Id"]
            if now < self._due.get(cid, 0):
                continue
            self._due[cid] = now + _seconds(check.get("Interval"), 30.0)
            _run(["podman", "healthcheck", "run", cid], timeout=_seconds(check.get("Timeout"), 30.0) + 10, check=False)
            self.checks_run += 1
