"""What the fault-injection suite (``tests/test_faults_*.py``) drives and looks at, with real processes only.

- :class:`FlowProcess`: ``python -m flows.bronze ...`` as a subprocess of its own session (so the connector it
  starts can be found and reaped), killed with ``kill -9`` at a stage the test saw, or awaited.
- :class:`Lake`: one test's bronze and silver roots on a real S3 server, read with boto3 and deltalake (never with
  the project's storage code): objects, manifests, data files, silver tables, the state and job ledgers.
- :func:`assert_converged`: the suite's verdict after every scenario: each silver table holds exactly one row per
  key and exactly the keys the source (or Airbyte) committed; the raw folder holds exactly the files the manifests
  list (no orphaned part); every manifest's files exist.
- :func:`files_holding`: every file under some roots whose bytes contain a secret.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from support.seaweed import S3Endpoint

REPO = Path(__file__).resolve().parents[2]
FAKE_CONNECTOR = REPO / "tests" / "support" / "fake_connector.py"
FAKE_SOURCE = {"package": "airbyte-source-fake", "version": "0.0.1"}


class FlowProcess:
    """One ``python -m flows.bronze`` (or ``flows.silver``) run in a subprocess; output kept in ``logs``."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path, logs: Path, name: str, module: str) -> None:
        self.name = name
        self.args = args
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self.started = time.monotonic()
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: its connector is found (and reaped) through it
            )
        self.killed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 240) -> int:
        """The exit code; AssertionError (with the output) when it takes longer than ``timeout``."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.reap()
            raise AssertionError(f"{self.name} still running after {timeout:.0f} s\n{self.tail()}") from None
        return code

    def kill9(self) -> None:
        """``kill -9`` of the flow process alone (what an OOM kill or a lost pod does); its children live on."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.killed = True

    def group(self) -> list[tuple[int, str]]:
        """The live processes of its process group (the flow and what it started): ``(pid, command line)``."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                pgrp = int(stat.rsplit(")", 1)[1].split()[2])
                state = stat.rsplit(")", 1)[1].split()[0]
                if pgrp == self.proc.pid and state != "Z":
                    found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, IndexError, ValueError):
                continue
        return found

    def reap(self) -> None:
        """Kill whatever is left of its process group (a killed flow's connector), by that group's id."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} stdout ---\n{self.out[-chars:]}\n--- {self.name} stderr ---\n{self.err[-chars:]}"


def wait_until(
    what: Callable[[], Any], why: str, timeout: float = 120, flow: FlowProcess | None = None, every: float = 0.02
) -> Any:
    """Poll ``what`` until it returns something truthy (returned); fail naming ``why`` after ``timeout`` seconds, or
    as soon as ``flow`` has exited (the stage can no longer be reached)."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        if flow is not None and not flow.running():
            raise AssertionError(f"{flow.name} exited ({flow.proc.returncode}) before {why}\n{flow.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached after {timeout:.0f} s: {why}" + (f"\n{flow.tail()}" if flow else ""))
        time.sleep(every)


@dataclass
class Lake:
    """One test's lake on a real S3 server: ``s3://<bronze>`` and ``s3://<silver>`` (``bucket/prefix``)."""

    endpoint: S3Endpoint
    bronze: str
    silver: str

    @property
    def bronze_uri(self) -> str:
        return f"s3://{self.bronze}"

    @property
    def silver_uri(self) -> str:
        return f"s3://{self.silver}"

    def _split(self, root: str) -> tuple[str, str]:
        bucket, _, prefix = root.partition("/")
        return bucket, prefix

    def _client(self) -> Any:
        return self.endpoint.boto3_client()

    def objects(self, under: str = "", root: str | None = None) -> dict[str, int]:
        """Keys (relative to the root) and sizes of every object under ``under``."""
        bucket, prefix = self._split(root or self.bronze)
        full = "/".join(p for p in (prefix, under) if p)
        found: dict[str, int] = {}
        for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full):
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix) + 1 if prefix else 0 :]] = int(item["Size"])
        return found

    def read(self, key: str, root: str | None = None) -> bytes:
        bucket, prefix = self._split(root or self.bronze)
        full = f"{prefix}/{key}" if prefix else key
        return bytes(self._client().get_object(Bucket=bucket, Key=full)["Body"].read())

    def write(self, key: str, body: bytes) -> None:
        bucket, prefix = self._split(self.bronze)
        self._client().put_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key, Body=body)

    def delete(self, key: str) -> None:
        bucket, prefix = self._split(self.bronze)
        self._client().delete_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key)

    def exists(self, key: str) -> bool:
        return key in self.objects(key)

    def manifests(self, source: str, stream: str) -> dict[int, dict[str, Any]]:
        """The stream's manifests by sync id."""
        folder = f"airbyte/{source}/{stream}/_manifests/"
        return {
            int(key[len(folder) : -5]): json.loads(self.read(key))
            for key in self.objects(folder)
            if key.endswith(".json") and key[len(folder) : -5].isdigit()
        }

    def data_files(self, source: str, stream: str) -> set[str]:
        """Every Parquet object directly in the stream's folder (what a raw reader of bronze would count)."""
        folder = f"airbyte/{source}/{stream}/"
        return {k for k in self.objects(folder) if k.endswith(".parquet") and "/" not in k[len(folder) :]}

    def keys_of(self, key: str, column: str = "id") -> list[Any]:
        return pq.read_table(io.BytesIO(self.read(key)), columns=[column]).column(column).to_pylist()

    def document(self, key: str) -> dict[str, Any] | None:
        return json.loads(self.read(key)) if self.exists(key) else None

    def silver_table(self, source: str, stream: str) -> pa.Table | None:
        """The stream's silver Delta table as delta-rs reads it (None before its first commit)."""
        bucket, prefix = self._split(self.silver)
        uri = f"s3://{bucket}/{'/'.join(p for p in (prefix, source, stream) if p)}"
        options = {
            "AWS_ENDPOINT_URL": self.endpoint.url,
            "AWS_ACCESS_KEY_ID": self.endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": self.endpoint.secret_key,
            "AWS_REGION": self.endpoint.region,
            "AWS_ALLOW_HTTP": "true",
        }
        try:
            return DeltaTable(uri, storage_options=options).to_pyarrow_table()
        except TableNotFoundError:
            return None


def assert_converged(
    lake: Lake,
    source: str,
    expected: Mapping[str, Iterable[Any]],
    *,
    set_aside: Mapping[str, Iterable[str]] | None = None,
    key: str = "id",
) -> None:
    """After a scenario and its re-run: for each stream, the silver table holds one row per key and exactly the keys
    expected (what the source or Airbyte committed); the raw folder holds exactly the files of its manifests (plus
    ``set_aside``: files kept on purpose, such as a quarantined batch's), and every file a manifest lists exists."""
    problems = []
    for stream, wanted in expected.items():
        wanted_keys = set(wanted)
        table = lake.silver_table(source, stream)
        keys = table.column(key).to_pylist() if table is not None else []
        duplicated = len(keys) - len(set(keys))
        if duplicated:
            problems.append(f"{stream}: silver holds {len(keys)} rows for {len(set(keys))} keys")
        if missing := wanted_keys - set(keys):
            problems.append(f"{stream}: silver lacks {len(missing)} committed key(s): {sorted(missing)[:10]}")
        if extra := set(keys) - wanted_keys:
            problems.append(f"{stream}: silver holds {len(extra)} key(s) never committed: {sorted(extra)[:10]}")
        manifests = lake.manifests(source, stream)
        listed = {f["key"] for m in manifests.values() for f in m["files"]}
        raw = lake.data_files(source, stream)
        if orphans := raw - listed - set((set_aside or {}).get(stream, ())):
            problems.append(f"{stream}: {len(orphans)} file(s) in the raw folder that no manifest lists: {orphans}")
        if lost := listed - raw:
            problems.append(f"{stream}: manifests list {len(lost)} file(s) that are gone: {lost}")
    assert not problems, "\n".join(problems)


def assert_nothing_left_behind(faults: FaultHarness, lake: Lake, source: str) -> None:
    """After a re-run of an embedded source: no staged half-written part and no connector config folder left in the
    runs' ``TMPDIR``, and one sync record only (the last run's: earlier ones were removed with their orphans)."""
    staged = sorted(p.name for p in faults.tmpdir.glob("lake-staging-*"))
    assert not staged, f"staging folders left in TMPDIR: {staged}"
    private = faults.tmpdir / f"airbyte-lakehouse-{os.getuid()}"
    assert not private.exists() or not any(private.iterdir()), f"connector files left: {list(private.iterdir())}"
    records = lake.objects(f"_state/airbyte/{source}/syncs/")
    assert len(records) == 1, f"sync records: {sorted(records)}"


def files_holding(secret: str, roots: Iterable[Path], since: float | None = None) -> list[Path]:
    """Every regular file under ``roots`` (following no links; only those modified at or after ``since``, when
    given) whose bytes contain ``secret``."""
    needle = secret.encode()
    found = []
    for root in roots:
        if not root.exists():
            continue
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    if path.is_symlink() or not path.is_file():
                        continue
                    if since is not None and path.stat().st_mtime < since:
                        continue
                    if needle in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


SLOT_WAIT = 10  # SILVER_SLOT_WAIT_SECONDS of the fault runs

# One secret value per session for every fault run: the connector config's ``api_key`` and the Airbyte client
# secret. The secrets test greps every file the runs touched for them.
CONNECTOR_SECRET = "cfg-secret-" + os.urandom(8).hex()
AIRBYTE_CLIENT_SECRET = "ab-client-secret-" + os.urandom(8).hex()


class FaultHarness:
    """One test's runs: a private ``TMPDIR``, connector cache (the fake connector, the real faker linked in), logs
    and lake prefixes, and the environment every ``python -m flows.bronze`` of the test gets (the session's Prefect
    server, the S3 server or a proxy in front of it, the secrets)."""

    def __init__(self, tmp: Path, endpoint: S3Endpoint, prefect_api_url: str, faker_venv: Path) -> None:
        self.tmp = tmp
        self.endpoint = endpoint
        self.tmpdir = tmp / "tmp"
        self.logs = tmp / "logs"
        self.cache = tmp / "connectors"
        for folder in (self.tmpdir, self.logs, self.cache):
            folder.mkdir(parents=True, exist_ok=True)
        venv = self.cache / "airbyte-source-fake-0.0.1"
        (venv / "bin").mkdir(parents=True)
        exe = venv / "bin" / "source-fake"
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CONNECTOR}" "$@"\n')
        exe.chmod(0o755)
        (venv / ".installed").write_text("airbyte-source-fake==0.0.1\n")
        (self.cache / faker_venv.name).symlink_to(faker_venv, target_is_directory=True)
        self.env: dict[str, str] = {
            **os.environ,
            **endpoint.env(),
            "PREFECT_API_URL": prefect_api_url,
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
            "TMPDIR": str(self.tmpdir),
            "CONNECTOR_CACHE_DIR": str(self.cache),
            "CONNECTOR_API_KEY": CONNECTOR_SECRET,
            "LAKE_S3_TIMEOUT_SECONDS": "30",
            # a run killed while merging leaves its source's silver slot taken (the test server runs no services to
            # free it): the next run's silver waits this long, then merges without it (default 75 s)
            "SILVER_SLOT_WAIT_SECONDS": str(SLOT_WAIT),
        }
        self.runs: list[FlowProcess] = []
        self.started = time.time()

    def lake(self, prefix: str, endpoint: S3Endpoint | None = None) -> Lake:
        return Lake(endpoint or self.endpoint, f"bronze/{prefix}", f"silver/{prefix}")

    def catalog(self, *sources: dict[str, Any]) -> Path:
        import yaml

        path = self.tmp / f"catalog-{len(list(self.tmp.glob('catalog-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump({"sources": list(sources)}))
        return path

    def start(
        self,
        lake: Lake,
        catalog: Path,
        *extra: str,
        env: Mapping[str, str] | None = None,
        module: str = "flows.bronze",
        name: str | None = None,
    ) -> FlowProcess:
        """Start ``python -m <module> --catalog ... --bronze ... --silver ... <extra>``."""
        args = ["--catalog", str(catalog), "--bronze", lake.bronze_uri, "--silver", lake.silver_uri, *extra]
        run = FlowProcess(
            args,
            {**self.env, **(env or {})},
            self.tmp,
            self.logs,
            name or f"run{len(self.runs) + 1}",
            module,
        )
        self.runs.append(run)
        return run

    def run(self, lake: Lake, catalog: Path, *extra: str, **kwargs: Any) -> FlowProcess:
        """Start a run and wait for it to end."""
        run = self.start(lake, catalog, *extra, **kwargs)
        run.wait()
        return run

    def close(self) -> None:
        for run in self.runs:
            run.reap()


def fake_source(name: str, **config: Any) -> dict[str, Any]:
    """A catalog source on the protocol-speaking fake connector (``tests/support/fake_connector.py``)."""
    return {
        "name": name,
        "connector": dict(FAKE_SOURCE),
        "config": {"records": 50, "streams": ["items", "others"], "api_key": "${CONNECTOR_API_KEY}", **config},
    }


def faker_source(name: str, faker: Mapping[str, Any]) -> dict[str, Any]:
    """The real faker connector (``conftest.FAKER_SOURCE``) under another name, with a secret in its config (faker
    accepts any extra property)."""
    return {**faker, "name": name, "config": {**faker["config"], "api_key": "${CONNECTOR_API_KEY}"}}


PLATFORM_STREAMS = ("users", "orders")


@dataclass
class Platform:
    """A fake Airbyte (in the test process, so its jobs go on when a flow dies) whose jobs land distinct ids in the
    session's S3 server, and one connection on it with two incremental streams."""

    airbyte: Any  # support.fake_airbyte.FakeAirbyte
    faults: FaultHarness
    written: dict[tuple[int, str], list[int]]
    source: str
    connection_id: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {
            "AIRBYTE_URL": self.airbyte.url,
            "AIRBYTE_CLIENT_ID": "lakehouse",
            "AIRBYTE_CLIENT_SECRET": AIRBYTE_CLIENT_SECRET,
            "AIRBYTE_POLL_INTERVAL": "0.2",
        }

    def lake(self) -> Lake:
        # destination-s3 writes airbyte/<source>/ at the bucket's root (the source name is unique per test)
        return Lake(self.faults.endpoint, "bronze", f"silver/{self.source}")

    def catalog(self) -> Path:
        return self.faults.catalog({"name": self.source, "connection_id": self.connection_id})

    def start(self, *extra: str, env: Mapping[str, str] | None = None) -> FlowProcess:
        return self.faults.start(self.lake(), self.catalog(), *extra, env={**self.env, **(env or {})})

    def jobs(self) -> list[Any]:
        return sorted(self.airbyte.jobs_for(self.connection_id), key=lambda job: job.id)

    def ledger(self) -> dict[str, Any] | None:
        return self.lake().document(f"_state/airbyte/{self.source}/jobs/{self.connection_id}.json")

    def committed(self, without: Iterable[tuple[int, str]] = ()) -> dict[str, set[int]]:
        """The ids each stream's jobs wrote, all of them succeeded (less the ``(job id, stream)`` batches named)."""
        keys: dict[str, set[int]] = {stream: set() for stream in PLATFORM_STREAMS}
        for job in self.jobs():
            assert job.status == "succeeded", (job.id, job.status)
            for stream in PLATFORM_STREAMS:
                if (job.id, stream) not in set(without):
                    keys[stream] |= set(self.written[(job.id, stream)])
        return keys

    def assert_converged(self, **kwargs: Any) -> None:
        """Exact silver, no orphan, and a job ledger with every job handed off and none in flight."""
        assert_converged(self.lake(), self.source, self.committed(), **kwargs)
        ledger = self.ledger()
        assert ledger is not None
        assert ledger["watermark"] == self.jobs()[-1].id and ledger["done"] == [], ledger
        assert not ledger.get("in_flight"), ledger


@contextlib.contextmanager
def fake_platform(faults: FaultHarness, job_seconds: float = 0.5, rows: int = 20) -> Iterator[Platform]:
    """A :class:`Platform` on a fake Airbyte of its own (client credentials with the session's client secret)."""
    from support.fake_airbyte import FakeAirbyte, airbyte_s3_writer

    written: dict[tuple[int, str], list[int]] = {}
    writer = airbyte_s3_writer(faults.endpoint, "bronze", rows_per_stream=rows, distinct_ids=True, written_ids=written)
    with FakeAirbyte(
        auth="client_credentials",
        client_id="lakehouse",
        client_secret=AIRBYTE_CLIENT_SECRET,
        job_seconds=job_seconds,
        writer=writer,
    ) as airbyte:
        platform = Platform(airbyte, faults, written, source=f"shop_{os.urandom(3).hex()}")
        platform.connection_id = airbyte.add_connection(
            f"{platform.source} → lake",
            source_name=platform.source,
            streams=PLATFORM_STREAMS,
            sync_modes=dict.fromkeys(PLATFORM_STREAMS, ("incremental", "append")),
        )
        yield platform
        assert airbyte.spec_violations == [], airbyte.spec_violations
