"""Connectors published as Docker images, run the way Airbyte's workers run them: ``docker run --rm -i <image>
spec | check --config | discover --config | read --config --catalog [--state]``.

Through the Docker CLI, so whatever answers the Docker API does (Docker, Podman's ``podman system service``;
``DOCKER_HOST`` honoured). The connector's config, catalog and state are written to a private folder, mounted
read-only at ``/airbyte/lakehouse-config`` and removed afterwards (``connector._private_files``).

Every container is named and labelled (``airbyte-lakehouse.owner = <host>:<pid>``) and removed on every way
out: ``docker rm -f`` once its command ended (after its exit code is read), or to stop it (cancellation, a
timeout, an error while reading); a watchdog process per container removes it when this process dies without
doing so (``kill -9``, a crash); and the next planning removes the containers of owners that no longer run.
``--rm`` is not used: Podman's Docker API (4.3) loses the exit code of a container it removes itself (``docker
run --rm ... sh -c 'exit 3'`` exits 0), and a connector's exit code decides whether its sync failed.

An image is resolved once per plan (``resolve_image``: the ``pull`` policy applied, then inspected) and run by
its id, so every command of a sync runs the very same image.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse_ingest.catalog.sources import ConnectorSpec
from lakehouse_ingest.errors import ConfigError, ImagePullError
from lakehouse_ingest.processes import process_exists

Progress = Callable[[str], None]
CONFIG_MOUNT = "/airbyte/lakehouse-config"
LABEL_OWNER = "airbyte-lakehouse.owner"
LABEL_SOURCE = "airbyte-lakehouse.source"
ENGINE_TIMEOUT = 60
PULL_TIMEOUT = 1800
# What engines print when an image or tag does not exist (Docker's daemon, Podman, registries).
_IMAGE_NOT_FOUND = (
    "manifest unknown",
    "not found: manifest",
    "repository does not exist",
    "pull access denied",
    "requested access to the resource is denied",
    "name unknown",
    "No such image",
    "does not exist",
)
_NEEDS = (
    "image connectors need the docker CLI and a Docker API: Docker, or Podman's "
    "`podman system service` with DOCKER_HOST=unix:///run/podman/podman.sock"
)


@dataclass(frozen=True)
class ContainerRuntime:
    """How to run one resolved image: its id, entrypoint override and the catalog's limits."""

    reference: str
    image_id: str
    entrypoint: tuple[str, ...] | None  # from AIRBYTE_ENTRYPOINT when the image has no ENTRYPOINT
    network: str = "bridge"
    memory: str | None = None
    cpus: float | None = None

    def argv(self, name: str, source: str, args: list[str], folder: Path | None) -> list[str]:
        """The ``docker run`` command of one protocol command (``args`` name files under the mounted folder)."""
        command = [docker_cli(), "run", "-i", "--name", name, "--pull", "never"]
        command += ["--label", f"{LABEL_OWNER}={owner()}", "--label", f"{LABEL_SOURCE}={source}"]
        command += ["--network", self.network, "--log-driver", "none"]
        if self.memory:
            command += ["--memory", self.memory]
        if self.cpus:
            command += ["--cpus", f"{self.cpus:g}"]
        if folder is not None:
            command += ["--volume", f"{folder}:{CONFIG_MOUNT}:ro"]
        prefix: list[str] = []
        if self.entrypoint:
            command += ["--entrypoint", self.entrypoint[0]]
            prefix = list(self.entrypoint[1:])
        return [*command, self.image_id, *prefix, *args]


def docker_cli() -> str:
    """The Docker CLI on PATH; bad input (exit 2) when there is none."""
    found = shutil.which("docker")
    if found is None:
        raise ConfigError(f"no 'docker' command on PATH: {_NEEDS}")
    return found


def owner() -> str:
    """This process as containers are labelled: ``<hostname>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def container_name(source: str, command: str) -> str:
    """A unique, findable container name for one connector command of ``source``."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", source)[:40]
    return f"airbyte-lakehouse-{safe}-{command}-{os.getpid()}-{secrets.token_hex(3)}"


def _engine(args: list[str], timeout: float = ENGINE_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_cli(), *args], capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def ensure_engine() -> None:
    """A Docker API answers, else bad input naming what is needed (exit 2)."""
    where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    try:
        result = _engine(["version", "--format", "{{.Server.Version}}"])
    except subprocess.TimeoutExpired:
        raise ConfigError(f"no Docker API answered at {where} within {ENGINE_TIMEOUT} s: {_NEEDS}") from None
    if result.returncode != 0:
        reason = _last_line(result.stderr) or f"exit {result.returncode}"
        raise ConfigError(f"no Docker API answers at {where} ({reason}): {_NEEDS}")


def resolve_image(spec: ConnectorSpec, progress: Progress, logs: Path) -> ContainerRuntime:
    """Apply the ``pull`` policy to ``spec.image`` and inspect it: the runtime every command of a sync uses."""
    assert spec.image is not None
    ensure_engine()
    remove_leftover_containers()
    reference = spec.image
    if spec.pull == "always":
        pull(reference, progress, logs)
    info = inspect_image(reference)
    if info is None:
        if spec.pull == "never":
            tags = local_tags(reference)
            listed = f"; on this machine: {', '.join(tags)}" if tags else ""
            raise ConfigError(f"no image {reference} on this machine (pull: never){listed}")
        pull(reference, progress, logs)
        info = inspect_image(reference)
        if info is None:
            raise ImagePullError(f"image {reference} was pulled but cannot be inspected")
    config = info.get("Config") or {}
    entrypoint: tuple[str, ...] | None = None
    if not config.get("Entrypoint"):
        env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
        if not env.get("AIRBYTE_ENTRYPOINT", "").strip():
            raise ConfigError(f"image {reference} has no ENTRYPOINT and no AIRBYTE_ENTRYPOINT: it is not a connector")
        entrypoint = tuple(shlex.split(env["AIRBYTE_ENTRYPOINT"]))
    return ContainerRuntime(
        reference=reference,
        image_id=str(info["Id"]),
        entrypoint=entrypoint,
        network=spec.network,
        memory=spec.memory,
        cpus=spec.cpus,
    )


def inspect_image(reference: str) -> dict[str, Any] | None:
    """The image's inspect document, or None when it is not on this machine."""
    result = _engine(["image", "inspect", reference])
    if result.returncode != 0:
        if any(m.lower() in result.stderr.lower() for m in ("no such image", "not found", "unknown image")):
            return None
        raise ImagePullError(f"cannot inspect image {reference}: {_last_line(result.stderr)}")
    documents = json.loads(result.stdout)
    return dict(documents[0]) if documents else None


def pull(reference: str, progress: Progress, logs: Path) -> None:
    """``docker pull``; an image or tag that does not exist is bad input (exit 2), anything else retryable."""
    progress(f"Pulling {reference}...")
    log = logs / f"pull-{re.sub(r'[^a-zA-Z0-9_.-]', '_', reference)}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [docker_cli(), "pull", reference],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=PULL_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            ).returncode
        except subprocess.TimeoutExpired:
            raise ImagePullError(f"pulling {reference} took over {PULL_TIMEOUT} s (log: {log})") from None
    if code == 0:
        log.unlink()
        return
    raise pull_failure(reference, log.read_text(errors="replace"), log)


def pull_failure(reference: str, output: str, log: Path) -> ConfigError | ImagePullError:
    """The error for a failed pull: bad input when the registry says the image or tag does not exist."""
    reason = _last_line(output)
    if any(marker.lower() in output.lower() for marker in _IMAGE_NOT_FOUND):
        tags = registry_tags(reference)
        newest = f"; newest tags: {', '.join(tags)}" if tags else ""
        return ConfigError(f"no image {reference}: {_short(reason)}{newest} (log: {log})")
    return ImagePullError(f"could not pull {reference}: the registry did not answer ({_short(reason)}) (log: {log})")


def split_reference(reference: str) -> tuple[str, str, str]:
    """``(registry, repository, tag)`` of an image reference, Docker Hub's defaults filled in."""
    name, _, _digest = reference.partition("@")
    tag = "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "registry-1.docker.io", name
        if "/" not in repository:
            repository = f"library/{repository}"
    return registry, repository, tag


def registry_tags(reference: str, scheme: str | None = None, timeout: float = 10.0) -> list[str]:
    """The newest version-like tags of the image's repository on its registry (anonymous registry API v2;
    empty when the registry cannot be asked). A registry on loopback is also asked over plain HTTP, as Docker
    allows for it."""
    registry, repository, _ = split_reference(reference)
    host = registry.rsplit(":", 1)[0]
    schemes = (
        [scheme]
        if scheme
        else ["https"] + (["http"] if host in ("localhost", "::1") or host.startswith("127.") else [])
    )
    for each in schemes:
        tags = _tags(f"{each}://{registry}/v2/{repository}/tags/list", timeout)
        if tags is not None:
            from lakehouse_ingest.sources.embedded.install import newest

            return newest([t for t in tags if re.fullmatch(r"v?[0-9][0-9A-Za-z.+-]*", t)])
    return []


def _tags(url: str, timeout: float) -> list[str] | None:
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            answer = client.get(url, params={"n": 1000})
            challenge = answer.headers.get("www-authenticate", "")
            if answer.status_code == 401 and challenge.lower().startswith("bearer "):
                fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
                realm = fields.pop("realm", "")
                token = client.get(realm, params=fields).json()
                bearer = token.get("token") or token.get("access_token")
                answer = client.get(url, params={"n": 1000}, headers={"Authorization": f"Bearer {bearer}"})
            if answer.status_code != 200:
                return None
            return [str(t) for t in answer.json().get("tags") or []]
    except (httpx.HTTPError, ValueError):
        return None


def local_tags(reference: str) -> list[str]:
    """Tags of the image's repository on this machine, newest first."""
    from lakehouse_ingest.sources.embedded.install import newest

    repository = reference.partition("@")[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    result = _engine(["image", "ls", repository, "--format", "{{.Tag}}"])
    tags = [t for t in result.stdout.split() if t and t != "<none>"] if result.returncode == 0 else []
    return newest(tags)


def remove_container(name: str) -> None:
    """Remove a container of ours, killing it if it runs (absent is fine)."""
    with contextlib.suppress(subprocess.TimeoutExpired, ConfigError, OSError):
        _engine(["rm", "-f", name], timeout=60)


def remove_leftover_containers() -> list[str]:
    """Remove the containers that processes of this host started and that outlived them. Returns their names."""
    result = _engine(["ps", "-a", "--filter", f"label={LABEL_OWNER}", "--format", "{{.Names}}\t{{.Labels}}"])
    if result.returncode != 0:
        return []
    host = socket.gethostname()
    removed = []
    for line in result.stdout.splitlines():
        name, _, labels = line.partition("\t")
        match = re.search(rf"{re.escape(LABEL_OWNER)}=([^,\s]+):(\d+)", labels)
        if match and match.group(1) == host and not process_exists(int(match.group(2))):
            remove_container(name)
            removed.append(name)
    return removed


# The watchdog: waits on a pipe from this process; EOF without "done" means this process died: remove the container.
_WATCHDOG = """
import os, subprocess, sys
docker, name = sys.argv[1], sys.argv[2]
data = sys.stdin.read()
if "done" not in data:
    subprocess.run([docker, "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
"""


class ContainerGuard:
    """Removes one named container on every way out: ``close`` (ours), or a watchdog when this process dies."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, docker_cli(), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives a signal sent to our process group
            close_fds=True,
        )

    def close(self) -> None:
        """Remove the container (running or ended), then release the watchdog."""
        remove_container(self.name)
        stdin = self._watchdog.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.write(b"done")
                stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._watchdog.wait(timeout=30)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
