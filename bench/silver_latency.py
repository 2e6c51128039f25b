"""Benchmark: how long silver takes to follow bronze, on a real Prefect stack, for a source with 20 streams.

A real ``prefect server start`` (scheduler, triggers, automations) on its own SQLite database, the catalog
registered with ``python -m deployments register``, and a process worker on its pool, as in production. The
source is a protocol-speaking embedded connector with ``--streams`` streams of ``--records`` records each (written
here into a throw-away connector cache); the lake is two local directories. Each round runs the bronze deployment
through the worker; the ``bronze.batches.validated`` event it sends makes the silver deployment merge every
stream's batch. Measured per round, from the server's and the Delta tables' own clocks:

  latency = the last silver commit of the round (max over the tables' newest Delta commit) - the bronze run's end

with its parts: the event sent and received by the server after the bronze run's end (negative: before it ended),
the silver run's creation (its automation), its start (worker pickup and process start), its end. Target: latency
<= 15 s for 20 streams.

    python bench/silver_latency.py [--streams 20] [--records 1000] [--rounds 3] [--worker-poll 10]

``--worker-poll`` is the worker's ``PREFECT_WORKER_QUERY_SECONDS`` (Prefect's default: 10 s): how often it asks
for runs to start, the largest single part of the latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import yaml  # noqa: E402
from deltalake import DeltaTable  # noqa: E402
from support.live_prefect import live_prefect, wait_for  # noqa: E402

POOL = "bench-pool"
CONNECTOR = {"package": "airbyte-source-wide", "version": "0.0.1"}
# A source connector speaking the Airbyte protocol: ``streams`` incremental streams (cursor updated_at, key id),
# ``records`` records each; every read emits them all again with a newer updated_at (so silver updates each row).
WIDE_CONNECTOR = r"""
import json, sys, time
from pathlib import Path

def emit(message):
    sys.stdout.write(json.dumps(message) + "\n")

def option(name, default):
    args = sys.argv[2:]
    return json.loads(Path(args[args.index(name) + 1]).read_text()) if name in args else default

config = option("--config", {})
names = [f"s{i:02d}" for i in range(1, int(config.get("streams", 20)) + 1)]
schema = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "updated_at": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"}}}
command = sys.argv[1]
if command == "spec":
    emit({"type": "SPEC", "spec": {"connectionSpecification": {"type": "object", "properties": {
        "streams": {"type": "integer"}, "records": {"type": "integer"}}}}})
elif command == "check":
    emit({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}})
elif command == "discover":
    emit({"type": "CATALOG", "catalog": {"streams": [
        {"name": n, "json_schema": schema, "supported_sync_modes": ["full_refresh", "incremental"],
         "source_defined_cursor": True, "default_cursor_field": ["updated_at"],
         "source_defined_primary_key": [["id"]]} for n in names]}})
elif command == "read":
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "+00:00"
    for n in names:
        for i in range(int(config.get("records", 1000))):
            emit({"type": "RECORD", "record": {"stream": n, "emitted_at": int(time.time() * 1000),
                  "data": {"id": i, "name": f"{n}-{i}", "updated_at": now}}})
        emit({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": n}, "stream_state": {"updated_at": now}}}})
"""


def _install_connector(cache: Path) -> None:
    """The connector, laid out as the installer leaves a virtualenv (so no pip install happens)."""
    venv = cache / f"{CONNECTOR['package']}-{CONNECTOR['version']}"
    (venv / "bin").mkdir(parents=True)
    script = venv / "connector.py"
    script.write_text(WIDE_CONNECTOR)
    exe = venv / "bin" / "source-wide"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    exe.chmod(0o755)
    (venv / ".installed").write_text(f"{CONNECTOR['package']}=={CONNECTOR['version']}\n")


def _newest_commit(table: Path) -> datetime:
    (entry,) = DeltaTable(str(table)).history(1)
    return datetime.fromtimestamp(entry["timestamp"] / 1000, tz=UTC)


def _round(stack: Any, silver: Path, streams: int, seen: set[Any]) -> dict[str, float]:
    run = stack.run_deployment("bronze-ingest/wide")
    bronze = stack.wait_final(run.id, timeout=900)
    assert bronze.state.is_completed(), bronze.state.message

    def new_silver_run() -> Any:
        done = [r for r in stack.runs_of("silver-merge/on-bronze-validated") if r.id not in seen]
        return done[0] if done and done[0].state.is_final() else None

    silver_run = wait_for("the silver run", new_silver_run, timeout=600, every=0.5)
    seen.add(silver_run.id)
    assert silver_run.state.is_completed(), silver_run.state.message
    assert len(silver_run.parameters["manifests"]) == streams, "one silver run carries every stream's manifest"
    tables = sorted(p for p in silver.joinpath("wide").iterdir() if p.is_dir())
    assert len(tables) == streams
    last_commit = max(_newest_commit(t) for t in tables)
    with stack.client() as client:
        from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

        events = client.read_events(
            EventFilter(
                event=EventNameFilter(name=["bronze.batches.validated"]),
                occurred=EventOccurredFilter(since=bronze.start_time),
            ),
            limit=50,
        ).events
    sent = min(events, key=lambda e: e.occurred)
    end = bronze.end_time
    return {
        "latency": (last_commit - end).total_seconds(),
        "event": (sent.occurred - end).total_seconds(),
        "received": (sent.received - end).total_seconds(),
        "created": (silver_run.created - end).total_seconds(),
        "started": (silver_run.start_time - end).total_seconds(),
        "ended": (silver_run.end_time - end).total_seconds(),
        "bronze": (bronze.end_time - bronze.start_time).total_seconds(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker-poll", type=float, default=10.0, help="PREFECT_WORKER_QUERY_SECONDS (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="silver-latency-") as tmp:
        root = Path(tmp)
        _install_connector(root / "connectors")
        config = {"streams": args.streams, "records": args.records}
        source = {"name": "wide", "connector": CONNECTOR, "config": config}
        catalog = root / "catalog.yaml"
        catalog.write_text(yaml.safe_dump({"deployments": {"work_pool": POOL}, "sources": [source]}))
        bronze, silver = root / "lake" / "bronze", root / "lake" / "silver"
        lake = {
            "BRONZE_URI": str(bronze),
            "SILVER_URI": str(silver),
            "CONNECTOR_CACHE_DIR": str(root / "connectors"),
            "PREFECT_WORKER_QUERY_SECONDS": str(args.worker_poll),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        started = time.monotonic()
        with live_prefect(root / "prefect") as stack:
            stack.register(catalog, CONNECTOR_CACHE_DIR=lake["CONNECTOR_CACHE_DIR"])
            stack.start_worker(POOL, **lake)
            print(
                f"{args.streams} streams x {args.records} records, worker poll {args.worker_poll:g} s, "
                f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (stack up in {time.monotonic() - started:.0f} s)"
            )
            print(
                "round  latency  event: sent  received  silver run: created  started  ended"
                "   (seconds after the bronze run's end)"
            )
            seen: set[Any] = set()
            results = []
            for number in range(1, args.rounds + 1):
                r = _round(stack, silver, args.streams, seen)
                results.append(r)
                print(
                    f"{number:>5}  {r['latency']:>7.1f}  {r['event']:>11.1f}  {r['received']:>8.1f}  "
                    f"{r['created']:>19.1f}  {r['started']:>7.1f}  {r['ended']:>5.1f}   (bronze run "
                    f"{r['bronze']:.0f} s, load {os.getloadavg()[0]:.1f})"
                )
    latencies = [r["latency"] for r in results]
    verdict = "met" if max(latencies) <= 15 else "NOT met"
    print(
        f"latency, bronze run's end -> last silver commit, {args.streams} streams: median "
        f"{statistics.median(latencies):.1f} s, max {max(latencies):.1f} s (target <= 15 s: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
