"""Run a real Airbyte source connector through the Airbyte protocol, as Airbyte's workers do.

A connector runs either on this machine (a PyPI package in its own virtualenv: ``install``; a declarative
manifest runs that way too, with ``airbyte-source-declarative-manifest``) or in a container (``docker``). Either
way it is run as ``spec``, ``check --config``, ``discover --config`` and ``read --config --catalog [--state]`` with
the JSON files in a private temporary directory (the config holds secrets: owner-only, removed after; for a
container it is mounted read-only), its stdout read as protocol messages.

``check`` tells a config the connector rejects (``CONNECTION_STATUS`` FAILED: bad input, ``ConfigError``) from a
check that could not run (a crash, a non-zero exit, a transient TRACE error: ``ConnectorError``). Messages from the
connector that reach an error are scrubbed of the config's secret values.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse_ingest.errors import ConfigRejected, ConnectorError
from lakehouse_ingest.processes import process_exists
from lakehouse_ingest.sources.embedded.docker import CONFIG_MOUNT, ContainerGuard, ContainerRuntime, container_name
from lakehouse_ingest.sources.embedded.install import ConnectorInstaller, Progress
from lakehouse_ingest.sources.protocol import parse_message, trace_error_message

__all__ = [
    "Connector",
    "ConnectorInstaller",
    "LocalRuntime",
    "Progress",
    "ReadProcess",
    "Runtime",
    "connector_leftovers",
    "private_root",
]

SINGLE_TIMEOUT = 600.0


@dataclass(frozen=True)
class LocalRuntime:
    """A connector installed on this machine: its executable."""

    executable: Path


Runtime = LocalRuntime | ContainerRuntime


class _Launched:
    """One running connector command: the process (the connector, or the docker CLI attached to its container)
    and, for a container, its guard."""

    def __init__(self, argv: list[str], guard: ContainerGuard | None, **popen: Any) -> None:
        self.guard = guard
        self._released = False
        try:
            self.process = subprocess.Popen(argv, **popen)
        except BaseException:
            if guard is not None:
                guard.close()
            raise

    def release(self) -> None:
        """After the command: kill it if it still runs; a container is removed either way."""
        if self._released:
            return
        self._released = True
        running = self.process.poll() is None
        if running:
            self.process.kill()
        self.process.wait()  # the exit code first: removing the container must not lose it
        if self.guard is not None:
            self.guard.close()


class Connector:
    """One source connector, driven through the Airbyte protocol commands."""

    def __init__(
        self,
        runtime: Runtime | Path,
        name: str,
        spec_cache: Path | None = None,
        secrets: Collection[str] = (),
    ) -> None:
        self.runtime: Runtime = LocalRuntime(runtime) if isinstance(runtime, Path) else runtime
        self.name = name
        self.spec_cache = spec_cache
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    @property
    def executable(self) -> Path:
        """The local executable (PyPI and manifest connectors)."""
        if not isinstance(self.runtime, LocalRuntime):
            raise TypeError(f"{self.name}: an image connector has no local executable")
        return self.runtime.executable

    @property
    def identity(self) -> str:
        """What runs: the executable, or the image and its id."""
        if isinstance(self.runtime, LocalRuntime):
            return str(self.runtime.executable)
        return f"{self.runtime.reference} ({self.runtime.image_id})"

    def spec(self) -> dict[str, Any]:
        """The connector specification (cached: it is fixed per installed version, per image id)."""
        cache = self._spec_cache_file()
        if cache is not None and cache.exists():
            cached: dict[str, Any] = json.loads(cache.read_text())
            return cached
        message = self._single("SPEC", ["spec"], None)
        spec: dict[str, Any] = message["spec"]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache.with_name(f".{cache.name}.{os.getpid()}")
            temporary.write_text(json.dumps(spec))
            os.replace(temporary, cache)
        return spec

    def _spec_cache_file(self) -> Path | None:
        if isinstance(self.runtime, LocalRuntime):
            return self.runtime.executable.parent.parent / "spec.json"
        if self.spec_cache is None:
            return None
        digest = self.runtime.image_id.removeprefix("sha256:")
        return self.spec_cache / f"{digest}.spec.json"

    def check(self, config: dict[str, Any]) -> None:
        """Run ``check``. A config the connector rejects raises ConfigError with its message; a check that could not
        run (crashed, exited non-zero, reported a transient or system error) raises ConnectorError."""
        status, errors, code, stderr = self._run("CONNECTION_STATUS", ["check"], config)
        connection = (status or {}).get("connectionStatus") or {}
        if status is not None and connection.get("status") == "SUCCEEDED" and code == 0 and not errors:
            return
        crashed = [text for text, failure in errors if failure not in (None, "config_error")]
        if status is not None and connection.get("status") == "FAILED" and not crashed:
            reason = connection.get("message") or (errors[-1][0] if errors else "no reason given")
            raise ConfigRejected(
                f"source {self.name!r}: the connector's check rejected the config: {self.scrub(reason)}"
            )
        detail = errors[-1][0] if errors else _tail(stderr)
        raise ConnectorError(f"{self.name}: 'check' failed (exit {code}): {self.scrub(detail)}")

    def discover(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        """The streams the connector offers with this config."""
        streams: list[dict[str, Any]] = self._single("CATALOG", ["discover"], config)["catalog"]["streams"]
        return streams

    @contextlib.contextmanager
    def read(self, config: dict[str, Any], catalog: dict[str, Any], state: Any | None) -> Iterator[ReadProcess]:
        """Start ``read``; the caller iterates lines; leaving the block waits for (or kills) the process."""
        with self._files(config=config, catalog=catalog, state=state) as files:
            args = ["read", "--config", files["config"], "--catalog", files["catalog"]]
            if state is not None:
                args += ["--state", files["state"]]
            process = ReadProcess(functools.partial(self._launch, "read", args, files), self.name)
            try:
                yield process
            finally:
                process.close()

    def scrub(self, text: str) -> str:
        """``text`` with the config's secret values masked."""
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text

    @contextlib.contextmanager
    def _files(self, **documents: Any) -> Iterator[dict[str, str]]:
        """The documents as files, named as the connector sees them (inside the container: under the mount)."""
        container = isinstance(self.runtime, ContainerRuntime)
        with _private_files(shared=container, **documents) as paths:
            named = {k: f"{CONFIG_MOUNT}/{p.name}" if container else str(p) for k, p in paths.items()}
            named["_folder"] = str(next(iter(paths.values())).parent) if paths else ""
            yield named

    def _launch(self, command: str, args: list[str], files: dict[str, str], **popen: Any) -> _Launched:
        popen.setdefault("stdout", subprocess.PIPE)
        if isinstance(self.runtime, LocalRuntime):
            return _Launched([str(self.runtime.executable), *args], None, **popen)
        name = container_name(self.name, command)
        folder = Path(files["_folder"]) if files.get("_folder") else None
        argv = self.runtime.argv(name, self.name, args, folder)
        return _Launched(argv, ContainerGuard(name), stdin=subprocess.DEVNULL, **popen)

    def _run(
        self, kind: str, args: list[str], config: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str | None]], int, str]:
        """Run a short command: its last ``kind`` message, TRACE errors (text, failure type), exit code, stderr."""
        with self._files(config=config) as files:
            command = [*args, "--config", files["config"]] if config is not None else list(args)
            launched = self._launch(args[0], command, files, stderr=subprocess.PIPE)
            try:
                stdout, stderr = launched.process.communicate(timeout=SINGLE_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise ConnectorError(f"{self.name}: '{args[0]}' did not finish within {SINGLE_TIMEOUT:.0f} s") from None
            finally:
                launched.release()
        found: dict[str, Any] | None = None
        errors: list[tuple[str, str | None]] = []
        for line in stdout.splitlines():
            message = parse_message(line)
            if message is None:
                continue
            if message["type"] == kind:
                found = message
            error = trace_error_message(message)
            if error:
                failure = ((message.get("trace") or {}).get("error") or {}).get("failure_type")
                errors.append((error, failure))
        return found, errors, launched.process.returncode, stderr.decode(errors="replace")

    def _single(self, kind: str, args: list[str], config: dict[str, Any] | None) -> dict[str, Any]:
        """Run a short command and return its one message of type ``kind``."""
        found, errors, code, stderr = self._run(kind, args, config)
        if errors or code != 0 or found is None:
            detail = errors[-1][0] if errors else _tail(stderr)
            raise ConnectorError(f"{self.name}: '{args[0]}' failed (exit {code}): {self.scrub(detail)}")
        return found


def config_digest(connector: Connector, config: dict[str, Any]) -> str:
    """A digest of what a check depends on: the connector that runs and the config (never stored, never shown)."""
    payload = json.dumps([connector.identity, config], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ReadProcess:
    """A running ``read``: stdout lines are pumped by a thread into a bounded queue of chunks.

    The thread keeps the connector's pipe drained while the consumer converts and writes, so the
    connector (the bottleneck) never waits on us; the bounded queue keeps memory bounded.
    """

    CHUNK_LINES = 2000
    QUEUE_CHUNKS = 32

    def __init__(self, launch: Callable[..., _Launched], name: str) -> None:
        import queue

        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self._launched = launch(stderr=self._stderr, bufsize=1 << 20)
        except BaseException:
            self._stderr.close()
            raise
        self._process = self._launched.process
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
        """Kill the connector if still running (e.g. we failed mid-read; a container is removed) and release
        resources."""
        self._launched.release()
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
    root = _private_root_path()
    root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    return root


def _private_root_path() -> Path:
    return Path(tempfile.gettempdir()) / f"airbyte-lakehouse-{os.getuid()}"


def connector_leftovers() -> list[Path]:
    """The private folders (``private_root``) of processes that no longer run: a run killed with ``kill -9`` cannot
    remove its own, and its config file holds secrets. Nothing is created to answer."""
    root = _private_root_path()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not process_exists(int(pid)):
            found.append(folder)
    return found


def remove_leftovers() -> list[Path]:
    """Remove ``connector_leftovers``; returns what was removed."""
    removed = connector_leftovers()
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


@contextlib.contextmanager
def _private_files(shared: bool = False, **documents: Any) -> Iterator[dict[str, Path]]:
    """Write JSON documents into a private folder (mode 0700) that is removed on every way out: success, a failed
    or killed connector, an exception, a cancellation. A crash of this process leaves it until the next private
    folder is made, which removes the leftovers of every process that no longer runs.

    ``shared``: the folder is mounted into a container whose user may not be ours (Airbyte's images run as
    ``airbyte``, uid 1000): the folder and files are then readable by all (0755 / 0644), which on this machine
    still means owner-only, since they sit in the owner-only ``private_root``.
    """
    root = private_root()
    remove_leftovers()
    directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    if shared:
        os.chmod(directory, 0o755)  # noqa: S103 - inside the owner-only root (see above)
    try:
        paths: dict[str, Path] = {}
        for name, document in documents.items():
            if document is None:
                continue
            path = directory / f"{name}.json"
            mode = 0o644 if shared else 0o600
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w") as handle:
                os.fchmod(handle.fileno(), mode)  # whatever the umask
                json.dump(document, handle)
            paths[name] = path
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(deque(lines, maxlen=3)) if lines else "no output on stderr"
