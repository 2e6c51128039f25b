"""Benchmark: is the connector, not our code, the bottleneck of an embedded sync?

In one run, side by side on the same machine:
  (a) the bare faker connector ``read`` of N users to /dev/null;
  (b) our full embedded sync of the same N users to bronze Parquet (local directory), plus validation
      and the manifest (core only: Prefect's fixed start-up cost is not part of the comparison).
Prints both times, the ratio b/a (target <= 1.10) and this process's peak RSS, which excludes the
connector subprocess (target <= 300 MB).

    python bench/embedded_sync.py [--users 100000] [--repeat 3] [--parallelism 4]
"""

from __future__ import annotations

import argparse
import logging
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
from lakehouse_ingest.sources.embedded.connector import Connector, ConnectorInstaller, _private_files
from lakehouse_ingest.sources.embedded.plan import plan_source
from lakehouse_ingest.sources.embedded.sync import run_embedded_sync


def source(users: int, parallelism: int) -> SourceEntry:
    return SourceEntry.model_validate(
        {
            "name": "faker",
            "connector": {"package": "airbyte-source-faker", "version": "7.2.1"},
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


def our_sync(plan: object, root: Path) -> tuple[float, int, int]:
    """(b): our embedded sync into a fresh local bronze root, validation and manifest included."""
    bronze = open_storage(str(root))
    logger = logging.getLogger("bench")
    started = time.perf_counter()
    outcome = run_embedded_sync(plan, bronze, logger)  # type: ignore[arg-type]
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
    args = parser.parse_args()

    entry = source(args.users, args.parallelism)
    installer = ConnectorInstaller(IngestSettings().connector_cache_dir, print)
    plan = plan_source(entry, installer)
    connector = Connector(plan.executable, entry.name)
    bare_times, our_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            bare_times.append(bare_read(connector, entry, plan.configured_catalog()))
            elapsed, rows, size = our_sync(plan, Path(tmp) / f"bronze-{round_}")
            assert rows == args.users, f"wrote {rows} rows, expected {args.users}"
            our_times.append(elapsed)
            print(
                f"round {round_ + 1}: bare read {bare_times[-1]:.2f} s, our sync {elapsed:.2f} s "
                f"({rows} rows, {size / 1e6:.1f} MB Parquet)"
            )
    bare, ours = min(bare_times), min(our_times)
    ratios = sorted(o / b for o, b in zip(our_times, bare_times, strict=True))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"users: {args.users}, faker parallelism: {args.parallelism}, rounds: {args.repeat}")
    print(f"(a) bare connector read to /dev/null: {bare:.2f} s ({args.users / bare:,.0f} records/s)")
    print(f"(b) our sync to bronze + validation:  {ours:.2f} s ({args.users / ours:,.0f} records/s)")
    median = statistics.median(ratios)
    print(f"ratio b/a, best of each: {ours / bare:.3f}; median of rounds: {median:.3f} (target <= 1.10)")
    print(f"peak RSS of this process (connector excluded): {peak_mb:.0f} MB (target <= 300 MB)")


if __name__ == "__main__":
    main()
