"""Install a connector from PyPI into its own virtualenv, and say clearly why an install failed.

One virtualenv per package and version under the cache directory (never this project's environment: connectors
pin their own airbyte-cdk and friends), built under a per-virtualenv lock and marked complete last, so a
concurrent or crashed install is never taken for a finished one. pip's full output goes to a log file; a failed
install leaves nothing in the cache (the log stays in a folder under the temporary directory, named in the error):

- the package or the version does not exist on the index: ``ConfigError`` (exit 2), naming the newest versions;
- the index could not be reached or answered with an error: ``ConnectorInstallError`` (retryable, exit 1);
- anything else (a build or dependency failure): ``ConnectorInstallError`` with pip's last line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from lakehouse_ingest.catalog.sources import ConnectorSpec
from lakehouse_ingest.errors import ConfigError, ConnectorInstallError

Progress = Callable[[str], None]
INSTALLED_MARKER = ".installed"
INSTALL_LOG = "install.log"
NEWEST_SHOWN = 5
_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)")
# What pip prints when the index did not answer (or answered with an error), as opposed to "no such version".
_UNREACHABLE = (
    "Retrying (Retry(",
    "connection broken by",
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "SSLError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "HTTP error",
    "Server Error",
)


class ConnectorInstaller:
    """Installs connector packages into per-version virtualenvs under ``cache_dir``."""

    def __init__(self, cache_dir: Path, progress: Progress, python: str = sys.executable) -> None:
        self.cache_dir = cache_dir
        self.progress = progress
        self.python = python

    def venv(self, spec: ConnectorSpec) -> Path:
        """Where the connector's virtualenv lives (installed or not)."""
        return self.cache_dir / f"{spec.pip_package}-{spec.pip_version or 'latest'}"

    def executable(self, spec: ConnectorSpec) -> Path:
        """The connector's executable, installing the package first when needed."""
        venv = self.venv(spec)
        exe = venv / "bin" / spec.command
        if (venv / INSTALLED_MARKER).exists() and exe.exists():
            return exe
        locks = self.cache_dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with _file_lock(locks / f"{venv.name}.lock"):
            if not (venv / INSTALLED_MARKER).exists():  # another process may have finished meanwhile
                self._install(spec, venv)
        if not exe.exists():
            raise ConfigError(
                f"{spec.requirement} installed no executable named {spec.command!r}; "
                f"name its console script in the catalog (connector.executable): {_scripts(venv)}"
            )
        return exe

    def _install(self, spec: ConnectorSpec, venv: Path) -> None:
        shutil.rmtree(venv, ignore_errors=True)  # a half-finished earlier install
        self.progress(f"Installing {spec.requirement} into {venv} (first use only; about a minute)...")
        logs = install_logs_dir()
        log = logs / f"{venv.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        started = time.monotonic()
        steps = [
            [self.python, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", spec.requirement],
        ]
        try:
            with log.open("w") as out:
                for step in steps:
                    code = self._run_with_heartbeat(step, out, spec, started)
                    if code != 0:
                        out.flush()
                        if _NOT_FOUND.search(log.read_text(errors="replace")):
                            self._probe(spec, venv, out)
                        out.flush()
                        raise install_failure(spec, log.read_text(errors="replace"), code, log)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)  # nothing half-built stays in the cache
            raise
        shutil.move(log, venv / INSTALL_LOG)
        (venv / INSTALLED_MARKER).write_text(spec.requirement + "\n")
        self.progress(f"Installed {spec.requirement} in {time.monotonic() - started:.0f} s")

    def _probe(self, spec: ConnectorSpec, venv: Path, out: IO[str]) -> None:
        """pip found no such version: ask again with pip's debug output, which says whether every index answered
        (pip logs an index it could not fetch only at debug level, and not at all without retries)."""
        out.write("\n--- probe: did every index answer? ---\n")
        out.flush()
        probe = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "-vv",
            spec.requirement,
        ]
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(probe, stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)

    def _run_with_heartbeat(self, command: list[str], out: IO[str], spec: ConnectorSpec, started: float) -> int:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    code = process.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    self.progress(f"  still installing {spec.requirement} ({time.monotonic() - started:.0f} s)...")
        finally:
            if process.poll() is None:  # interrupted: pip must not go on writing into a removed virtualenv
                process.kill()
                process.wait()
        return code


def install_failure(spec: ConnectorSpec, output: str, code: int, log: Path) -> ConfigError | ConnectorInstallError:
    """The error for a failed ``pip install``: bad input when the package or version does not exist, else retryable."""
    unreachable = next((line.strip() for line in output.splitlines() if _unreachable(line)), None)
    found = _NOT_FOUND.search(output)
    if unreachable is not None:
        return ConnectorInstallError(
            f"could not install {spec.requirement}: the package index did not answer "
            f"({_shorten(unreachable)}); try again later (log: {log})"
        )
    if found is not None:
        listed = [v.strip() for v in found.group(2).split(",") if v.strip() and v.strip() != "none"]
        if not listed:
            return ConfigError(f"no package {spec.pip_package} on the package index (log: {log})")
        return ConfigError(
            f"no version {spec.pip_version} of {spec.pip_package}; newest: {', '.join(newest(listed))} (log: {log})"
        )
    last = [line.strip() for line in output.splitlines() if line.strip()]
    detail = _shorten(next((line for line in reversed(last) if line.startswith("ERROR")), last[-1] if last else ""))
    return ConnectorInstallError(f"pip could not install {spec.requirement} (exit {code}): {detail} (log: {log})")


def _unreachable(line: str) -> bool:
    """A line of pip's output saying an index did not answer, or answered with an error other than 404."""
    if "Could not fetch URL" in line:
        return not re.search(r"\b404\b", line)
    return any(marker in line for marker in _UNREACHABLE)


def newest(versions: list[str], count: int = NEWEST_SHOWN) -> list[str]:
    """The ``count`` newest versions, releases before pre-releases; unparsable ones last."""
    from packaging.version import InvalidVersion, Version

    parsed: list[tuple[bool, Version, str]] = []
    others: list[str] = []
    for text in versions:
        try:
            version = Version(text.removeprefix("v"))
        except InvalidVersion:
            others.append(text)
            continue
        parsed.append((not (version.is_prerelease or version.is_devrelease), version, text))
    parsed.sort(reverse=True)
    return ([text for _, _, text in parsed] + others)[:count]


def install_logs_dir() -> Path:
    """Where install logs are written (owner-only; a failed install's log stays here, out of the cache)."""
    logs = Path(tempfile.gettempdir()) / f"airbyte-lakehouse-install-logs-{os.getuid()}"
    logs.mkdir(mode=0o700, exist_ok=True)
    return logs


def _scripts(venv: Path) -> str:
    found = sorted(p.name for p in (venv / "bin").glob("source-*"))
    return f"it has {', '.join(found)}" if found else "it has no source-* script"


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
