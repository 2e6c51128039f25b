"""Container images for the tests of Docker-image connectors, built on this machine from the local base image.

These machines have no Docker daemon and no image registry: ``../shared/tools/containers.sh setup`` serves the
Docker API with Podman, and ``containers.sh base-image`` builds ``localhost/debian-python:3.11`` from Debian
packages. The images here are built FROM it (pip installs from the package index during the build) and tagged
with a digest of their build context, so a changed Dockerfile rebuilds and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SUPPORT = Path(__file__).parent
BASE_IMAGE = "localhost/debian-python:3.11"
FAKER_IMAGE = "localhost/airbyte-lakehouse-test/source-faker"
FAKER_TAG = "7.2.1"
FAKE_IMAGE = "localhost/airbyte-lakehouse-test/source-fake"
PODMAN_SOCKET = "/run/podman/podman.sock"
CONTEXT_LABEL = "airbyte-lakehouse.test-context"


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI (DOCKER_HOST honoured)."""
    cli = shutil.which("docker") or "docker"
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout, check=False)


def docker_api() -> str | None:
    """None when a Docker API answers (DOCKER_HOST set to Podman's socket when only that one answers), else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    if docker("version", "--format", "{{.Server.Version}}", timeout=30).returncode == 0:
        return None
    if not os.environ.get("DOCKER_HOST") and Path(PODMAN_SOCKET).exists():
        os.environ["DOCKER_HOST"] = f"unix://{PODMAN_SOCKET}"
        if docker("version", timeout=30).returncode == 0:
            return None
        del os.environ["DOCKER_HOST"]
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    return f"no Docker API answers at {where} (run ../shared/tools/containers.sh setup, then its env)"


def _context_digest(folder: Path, extra: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for name, content in sorted(extra.items()):
        digest.update(name.encode() + b"\0" + content)
    return digest.hexdigest()[:16]


def build_image(name: str, tag: str, folder: Path, extra: dict[str, bytes] | None = None) -> str:
    """``name:tag`` built from ``folder`` (plus ``extra`` files), unless an image of the same context exists."""
    extra = extra or {}
    reference = f"{name}:{tag}"
    digest = _context_digest(folder, extra)
    found = docker("image", "inspect", reference, "--format", f'{{{{index .Config.Labels "{CONTEXT_LABEL}"}}}}')
    if found.returncode == 0 and found.stdout.strip() == digest:
        return reference
    if docker("image", "inspect", BASE_IMAGE).returncode != 0:
        raise RuntimeError(f"base image {BASE_IMAGE} missing: run ../shared/tools/containers.sh base-image")
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(folder, context)
        for file, content in extra.items():
            (context / file).write_bytes(content)
        label = f"{CONTEXT_LABEL}={digest}"
        built = docker("build", "-q", "--label", label, "-t", reference, str(context), timeout=1800)
    if built.returncode != 0:
        raise RuntimeError(f"building {reference} failed: {built.stderr.strip()[-2000:]}")
    return reference


def faker_image() -> str:
    """The real faker connector (airbyte-source-faker 7.2.1) in an image shaped like Airbyte's (~3 min to build)."""
    return build_image(FAKER_IMAGE, FAKER_TAG, SUPPORT / "connector_image")


def fake_image() -> str:
    """The fake connector in an image with only AIRBYTE_ENTRYPOINT (seconds to build on the base image)."""
    fake = (SUPPORT / "fake_connector.py").read_bytes()
    return build_image(FAKE_IMAGE, "0.0.1", SUPPORT / "fake_connector_image", {"fake_connector.py": fake})


def our_containers() -> list[str]:
    """Names of the containers this project's engine started (running or not)."""
    listed = docker("ps", "-a", "--filter", "label=airbyte-lakehouse.owner", "--format", "{{.Names}}")
    return [n for n in listed.stdout.split() if n]
