"""Install and run a real Airbyte source connector through the Airbyte protocol, as Airbyte's workers do.

A connector from PyPI is installed on first use into its own virtualenv under the cache directory
(never into this project's environment: connectors pin their own airbyte-cdk and friends). It is then
run as ``<exe> spec``, ``check --config``, ``discover --config`` and ``read --config --catalog [--state]``
with the JSON files in a private temporary directory (the config holds secrets: mode 0700, removed after).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from lakehouse_ingest.catalog.sources import ConnectorSpec
from lakehouse_ingest.errors import ConnectorError, ConnectorInstallError
from lakehouse_ingest.sources.protocol import parse_message, trace_error_message

Progress = Callable[[str], None]
_INSTALLED_MARKER = ".installed"


class ConnectorInstaller:
    """Installs connector packages into per-version virtualenvs under ``cache_dir``."""

    def __init__(self, cache_dir: Path, progress: Progress, python: str = sys.executable) -> None:
        self.cache_dir = cache_dir
        self.progress = progress
        self.python = python

    def executable(self, spec: ConnectorSpec) -> Path:
        """The connector's executable, installing the package first when needed."""
        venv = self.cache_dir / f"{spec.package}-{spec.version or 'latest'}"
        exe = venv / "bin" / spec.command
        if (venv / _INSTALLED_MARKER).exists() and exe.exists():
            return exe
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.cache_dir / f".{venv.name}.lock"):
            if not (venv / _INSTALLED_MARKER).exists():  # another process may have finished meanwhile
                self._install(spec, venv)
        if not exe.exists():
            raise ConnectorInstallError(f"{spec.requirement} installed no executable named {spec.command!r}")
        return exe

    def _install(self, spec: ConnectorSpec, venv: Path) -> None:
        shutil.rmtree(venv, ignore_errors=True)  # a half-finished earlier install
        self.progress(f"Installing {spec.requirement} into {venv} (first use only; about a minute)...")
        log = venv.with_name(venv.name + ".install.log")
        started = time.monotonic()
        steps = [
            [self.python, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", spec.requirement],
        ]
        with log.open("w") as out:
            for step in steps:
                self._run_with_heartbeat(step, out, spec, started)
        (venv / _INSTALLED_MARKER).write_text(spec.requirement + "\n")
        self.progress(f"Installed {spec.requirement} in {time.monotonic() - started:.0f} s")

    def _run_with_heartbeat(self, command: list[str], out: IO[str], spec: ConnectorSpec, started: float) -> None:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                code = process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                self.progress(f"  still installing {spec.requirement} ({time.monotonic() - started:.0f} s)...")
        if code != 0:
            out.flush()
            tail = Path(out.name).read_text(errors="replace").strip().splitlines()[-3:]
            raise ConnectorInstallError(
                f"pip could not install {spec.requirement} (exit {code}): {' | '.join(tail)} (log: {out.name})"
            )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Connector:
    """One installed source connector, driven through the Airbyte protocol commands."""

    def __init__(self, executable: Path, name: str) -> None:
        self.executable = executable
        self.name = name

    def spec(self) -> dict[str, Any]:
        """The connector specification (cached next to the executable: it is fixed per version)."""
        cache = self.executable.parent.parent / "spec.json"
        if cache.exists():
            cached: dict[str, Any] = json.loads(cache.read_text())
            return cached
        message = self._single("SPEC", ["spec"], None)
        spec: dict[str, Any] = message["spec"]
        cache.write_text(json.dumps(spec))
        return spec

    def check(self, config: dict[str, Any]) -> None:
        """Run ``check``; a FAILED status raises ConnectorError with the connector's message."""
        status = self._single("CONNECTION_STATUS", ["check"], config)["connectionStatus"]
        if status.get("status") != "SUCCEEDED":
            raise ConnectorError(f"{self.name}: check failed: {status.get('message') or status.get('status')}")

    def discover(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        """The streams the connector offers with this config."""
        streams: list[dict[str, Any]] = self._single("CATALOG", ["discover"], config)["catalog"]["streams"]
        return streams

    @contextlib.contextmanager
    def read(self, config: dict[str, Any], catalog: dict[str, Any], state: Any | None) -> Iterator[ReadProcess]:
        """Start ``read``; the caller iterates lines; leaving the block waits for (or kills) the process."""
        with _private_files(config=config, catalog=catalog, state=state) as files:
            args = ["read", "--config", str(files["config"]), "--catalog", str(files["catalog"])]
            if state is not None:
                args += ["--state", str(files["state"])]
            process = ReadProcess([str(self.executable), *args], self.name)
            try:
                yield process
            finally:
                process.close()

    def _single(self, kind: str, args: list[str], config: dict[str, Any] | None) -> dict[str, Any]:
        """Run a short command and return its one message of type ``kind``."""
        with _private_files(config=config) as files:
            command = [str(self.executable), *args]
            if config is not None:
                command += ["--config", str(files["config"])]
            result = subprocess.run(command, capture_output=True, timeout=600, check=False)
        found: dict[str, Any] | None = None
        errors: list[str] = []
        for line in result.stdout.splitlines():
            message = parse_message(line)
            if message is None:
                continue
            if message["type"] == kind:
                found = message
            error = trace_error_message(message)
            if error:
                errors.append(error)
        if errors or result.returncode != 0 or found is None:
            detail = errors[-1] if errors else _tail(result.stderr.decode(errors="replace"))
            raise ConnectorError(f"{self.name}: '{args[0]}' failed (exit {result.returncode}): {detail}")
        return found


class ReadProcess:
    """A running ``read``: stdout lines are pumped by a thread into a bounded queue of chunks.

    The thread keeps the connector's pipe drained while the consumer converts and writes, so the
    connector (the bottleneck) never waits on us; the bounded queue keeps memory bounded.
    """

    CHUNK_LINES = 2000
    QUEUE_CHUNKS = 32

    def __init__(self, command: list[str], name: str) -> None:
        import queue

        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=1 << 20)
        self._queue: queue.Queue[list[bytes] | BaseException | None] = queue.Queue(self.QUEUE_CHUNKS)
        self._pump = threading.Thread(target=self._run_pump, name=f"{name}-stdout", daemon=True)
        self._pump.start()
        self.returncode: int | None = None

    def _run_pump(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            chunk: list[bytes] = []
            for line in stdout:
                chunk.append(line)
                if len(chunk) >= self.CHUNK_LINES:
                    self._queue.put(chunk)
                    chunk = []
            if chunk:
                self._queue.put(chunk)
            self._queue.put(None)
        except BaseException as exc:  # surfaced to the consumer, never lost in the thread
            self._queue.put(exc)

    def chunks(self) -> Iterator[list[bytes]]:
        """Chunks of stdout lines until the connector closes its stdout."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise ConnectorError(f"{self.name}: reading connector output failed: {item}") from item
            yield item

    def wait(self) -> int:
        """Wait for exit and return the exit code."""
        self.returncode = self._process.wait()
        return self.returncode

    def stderr_tail(self) -> str:
        """The last lines the connector wrote to stderr."""
        self._stderr.seek(0)
        return _tail(self._stderr.read().decode(errors="replace"))

    def close(self) -> None:
        """Kill the connector if still running (e.g. we failed mid-read) and release resources."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        while self._pump.is_alive():  # unblock a pump waiting on a full queue
            with contextlib.suppress(Exception):
                self._queue.get_nowait()
            self._pump.join(timeout=0.05)
        if self._process.stdout:
            self._process.stdout.close()
        self._stderr.close()


def private_root() -> Path:
    """Where connector config, catalog and state files live while a connector runs: one owner-only folder per
    user under the temporary directory, so the leftovers of a crashed run can be found and removed."""
    root = Path(tempfile.gettempdir()) / f"airbyte-lakehouse-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    return root


def remove_leftovers(root: Path) -> list[Path]:
    """Remove the private folders of processes that no longer run (a run killed with ``kill -9`` cannot remove its
    own; its config file holds secrets). Returns what was removed."""
    removed = []
    for folder in root.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextlib.contextmanager
def _private_files(**documents: Any) -> Iterator[dict[str, Path]]:
    """Write JSON documents into a private folder (mode 0700) that is removed on every way out: success, a failed
    or killed connector, an exception, a cancellation. A crash of this process leaves it until the next private
    folder is made, which removes the leftovers of every process that no longer runs."""
    root = private_root()
    remove_leftovers(root)
    directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    try:
        paths: dict[str, Path] = {}
        for name, document in documents.items():
            if document is None:
                continue
            path = directory / f"{name}.json"
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                json.dump(document, handle)
            paths[name] = path
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(deque(lines, maxlen=3)) if lines else "no output on stderr"
