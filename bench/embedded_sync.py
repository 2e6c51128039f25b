"""Benchmark: is the connector, not our code, the bottleneck of an embedded sync?

In one run, side by side on the same machine:
  (a) the bare faker connector ``read`` of N users to /dev/null;
  (b) our full embedded sync of the same N users to bronze Parquet (local directory), plus validation
      and the manifest (core only: Prefect's fixed start-up cost is not part of the comparison).
Prints both times, the ratio b/a (target <= 1.10) and this process's peak RSS, which excludes the
connector subprocess (target <= 300 MB).

With ``--image [REFERENCE]`` the connector runs in a container (default: the tests' faker image, built from the
local base image, see tests/support/containers.py; needs a Docker API, DOCKER_HOST honoured), and in the same run:
  (a) the bare connector ``read`` in that image, its stdout to /dev/null inside the container;
  (a2) the same read streamed through the Docker CLI to this machine's /dev/null (what attaching costs);
  (b) our sync through the container, validation and manifest included.
The ratio b/a is the target (<= 1.10); b/a2 shows our own share once the container's output is on the host.

    python bench/embedded_sync.py [--users 100000] [--repeat 3] [--parallelism 4] [--image [REFERENCE]]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lakehouse_ingest.bronze.checks.validate import validate_batch
from lakehouse_ingest.bronze.manifest import publish_manifest
from lakehouse_ingest.catalog.sources import SourceEntry
from lakehouse_ingest.lake.roots import open_storage
from lakehouse_ingest.settings import IngestSettings
from lakehouse_ingest.sources.embedded.connector import Connector, ConnectorInstaller, LocalRuntime, _private_files
from lakehouse_ingest.sources.embedded.docker import (
    CONFIG_MOUNT,
    ContainerRuntime,
    container_name,
    docker_cli,
    remove_container,
)
from lakehouse_ingest.sources.embedded.plan import EmbeddedPlan, plan_source
from lakehouse_ingest.sources.embedded.sync import run_embedded_sync

PYPI = {"package": "airbyte-source-faker", "version": "7.2.1"}


def source(users: int, parallelism: int, connector: dict[str, object] = PYPI) -> SourceEntry:
    return SourceEntry.model_validate(
        {
            "name": "faker",
            "connector": connector,
            "config": {"count": users, "seed": 42, "records_per_slice": 1000, "parallelism": parallelism},
            "streams": [{"name": "users", "sync_mode": "full_refresh"}],
        }
    )


def bare_read(connector: Connector, entry: SourceEntry, catalog: dict[str, object]) -> float:
    """(a): the connector alone, its stdout thrown away."""
    with _private_files(config=entry.config, catalog=catalog) as files:
        started = time.perf_counter()
        subprocess.run(
            [
                str(connector.executable),
                "read",
                "--config",
                str(files["config"]),
                "--catalog",
                str(files["catalog"]),
            ],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        return time.perf_counter() - started


def bare_container_read(
    runtime: ContainerRuntime, entry: SourceEntry, catalog: dict[str, object], inside: bool
) -> float:
    """(a) the connector's read in its container, stdout to /dev/null inside it (``inside``), or (a2) streamed
    through the Docker CLI to this machine's /dev/null. Same image, mount, network and limits as our sync."""
    args = ["read", "--config", f"{CONFIG_MOUNT}/config.json", "--catalog", f"{CONFIG_MOUNT}/catalog.json"]
    if inside:
        entrypoint = list(runtime.entrypoint or image_entrypoint(runtime.image_id))
        runtime = dataclasses.replace(runtime, entrypoint=("sh", "-c", 'exec "$@" > /dev/null', "sh"))
        args = [*entrypoint, *args]
    with _private_files(shared=True, config=entry.config, catalog=catalog) as files:
        name = container_name("bench", "bare")
        argv = runtime.argv(name, "bench", args, files["config"].parent)
        try:
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
            return time.perf_counter() - started
        finally:
            remove_container(name)


def image_entrypoint(image_id: str) -> list[str]:
    """The image's ENTRYPOINT."""
    inspected = subprocess.run([docker_cli(), "image", "inspect", image_id], capture_output=True, text=True, check=True)
    return list(json.loads(inspected.stdout)[0]["Config"]["Entrypoint"])


def our_sync(plan: EmbeddedPlan, root: Path) -> tuple[float, int, int]:
    """(b): our embedded sync into a fresh local bronze root, validation and manifest included."""
    bronze = open_storage(str(root))
    logger = logging.getLogger("bench")
    started = time.perf_counter()
    outcome = run_embedded_sync(plan, bronze, logger)
    for batch in outcome.batches.values():
        validation = validate_batch(bronze, batch)
        assert validation.passed, validation.failure
        publish_manifest(bronze, batch, validation)
    elapsed = time.perf_counter() - started
    batch = outcome.batches["users"]
    return elapsed, batch.records, batch.bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="alternate (a) and (b) this many times")
    parser.add_argument("--parallelism", type=int, default=4, help="faker's worker processes (4 is its default)")
    parser.add_argument(
        "--image", nargs="?", const="", default=None, metavar="REFERENCE", help="run the connector in a container"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()

    connector_spec: dict[str, object] = PYPI
    if args.image is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from support import containers

        reason = containers.docker_api()
        if reason:
            raise SystemExit(f"--image: {reason}")
        connector_spec = {"image": args.image or containers.faker_image(), "pull": "never"}
    entry = source(args.users, args.parallelism, connector_spec)
    installer = ConnectorInstaller(IngestSettings().connector_cache_dir, print)
    plan = plan_source(entry, installer)
    bare_times, attached_times, our_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            if isinstance(plan.runtime, ContainerRuntime):
                bare_times.append(bare_container_read(plan.runtime, entry, plan.configured_catalog(), inside=True))
                attached_times.append(bare_container_read(plan.runtime, entry, plan.configured_catalog(), inside=False))
            else:
                assert isinstance(plan.runtime, LocalRuntime)
                bare_times.append(bare_read(plan.connector(), entry, plan.configured_catalog()))
            elapsed, rows, size = our_sync(plan, Path(tmp) / f"bronze-{round_}")
            assert rows == args.users, f"wrote {rows} rows, expected {args.users}"
            our_times.append(elapsed)
            attached = f", bare read through the Docker CLI {attached_times[-1]:.2f} s" if attached_times else ""
            print(
                f"round {round_ + 1}: bare read {bare_times[-1]:.2f} s{attached}, our sync {elapsed:.2f} s "
                f"({rows} rows, {size / 1e6:.1f} MB Parquet)"
            )
    bare, ours = min(bare_times), min(our_times)
    ratios = sorted(o / b for o, b in zip(our_times, bare_times, strict=True))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    where = f"in container {plan.runtime.reference}" if isinstance(plan.runtime, ContainerRuntime) else "from PyPI"
    print(f"users: {args.users}, faker parallelism: {args.parallelism}, rounds: {args.repeat}, connector {where}")
    print(f"(a) bare connector read to /dev/null: {bare:.2f} s ({args.users / bare:,.0f} records/s)")
    if attached_times:
        attached = min(attached_times)
        ratios_attached = sorted(o / a for o, a in zip(our_times, attached_times, strict=True))
        print(f"(a2) bare read through the Docker CLI: {attached:.2f} s ({args.users / attached:,.0f} records/s)")
        median_attached = statistics.median(ratios_attached)
        print(f"ratio b/a2, best of each: {ours / attached:.3f}; median of rounds: {median_attached:.3f}")
    print(f"(b) our sync to bronze + validation:  {ours:.2f} s ({args.users / ours:,.0f} records/s)")
    median = statistics.median(ratios)
    print(f"ratio b/a, best of each: {ours / bare:.3f}; median of rounds: {median:.3f} (target <= 1.10)")
    print(f"peak RSS of this process (connector excluded): {peak_mb:.0f} MB (target <= 300 MB)")
    load_after = os.getloadavg()
    print(
        f"load average (1/5/15 min) before: {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
        f"after: {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} ({os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
