"""Benchmark: 100 Airbyte connections synced in one bronze flow run against the fake Airbyte server.

Each job lasts 5 s; the poll interval is 1 s. The fake server runs in its own process (so this process's
CPU time is the flow's alone) and its jobs write real Parquet into a SeaweedFS S3 server, which the flow
then validates and hands off. Prints:
  - sync wall time: first trigger sent → last job seen terminal (target <= 5 s + 2 intervals + 10 % = 7.7 s);
  - the whole flow run's wall time (Prefect start-up, resolve, validation, handoff included);
  - API requests per job (target <= duration / interval + 3 = 8);
  - the flow process's CPU seconds.

    python bench/airbyte_syncs.py [--connections 100] [--job-seconds 5] [--poll 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.seaweed import S3Endpoint, SeaweedS3Server  # noqa: E402

SERVER = """
import json, sys
from support.fake_airbyte import FakeAirbyte, airbyte_s3_writer
from support.seaweed import S3Endpoint
args = json.loads(sys.argv[1])
endpoint = S3Endpoint(**args["s3"])
with FakeAirbyte(job_seconds=args["job_seconds"], pending_seconds=0.0,
                 writer=airbyte_s3_writer(endpoint, "bronze", rows_per_stream=100)) as fake:
    ids = [fake.add_connection(f"bench{i}", source_name=f"bench{i}") for i in range(args["connections"])]
    print(json.dumps({"url": fake.url, "ids": ids}), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    syncs = [r.started for r in fake.requests if r.path.endswith("/connections/sync")]
    polls = [r for r in fake.requests if r.path.endswith("/jobs/get_without_logs")]
    done = [r.ended for r in polls if (r.response_json or {}).get("job", {}).get("status") == "succeeded"]
    jobs = len(fake.jobs)
    job_requests = sum(1 for r in fake.requests if "/jobs/" in r.path or r.path.endswith("/connections/sync"))
    print(json.dumps({
        "jobs": jobs, "succeeded": sum(j.status == "succeeded" for j in fake.jobs.values()),
        "job_requests": job_requests, "all_requests": len(fake.requests),
        "first_trigger": min(syncs), "last_trigger": max(syncs), "last_terminal": max(done),
        "violations": fake.spec_violations[:5],
    }), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, SeaweedS3Server(Path(tmp) / "s3", buckets=("bronze",)) as s3:
        server = _start_fake(s3, args)
        started = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        catalog = Path(tmp) / "catalog.yaml"
        sources = [f"  - name: bench{i}\n    connection_id: {cid}\n" for i, cid in enumerate(started["ids"])]
        catalog.write_text("sources:\n" + "".join(sources))
        os.environ.update(s3.env())
        os.environ.update(
            {
                "AIRBYTE_URL": started["url"],
                "AIRBYTE_POLL_INTERVAL": str(args.poll),
                "AIRBYTE_MAX_CONCURRENT_SYNCS": str(args.connections),
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
        )
        from flows.cli import bronze_main

        cpu_before = _cpu_seconds()
        wall_start = time.perf_counter()
        code = bronze_main(["--catalog", str(catalog), "--bronze", "s3://bronze"])
        wall = time.perf_counter() - wall_start
        cpu = _cpu_seconds() - cpu_before
        server.stdin.close()  # type: ignore[union-attr]
        stats = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        server.wait(timeout=30)

    sync_wall = stats["last_terminal"] - stats["first_trigger"]
    target = args.job_seconds + 2 * args.poll
    print(f"connections: {args.connections}, job duration: {args.job_seconds:.0f} s, poll interval: {args.poll:.0f} s")
    print(f"flow exit code: {code}; jobs: {stats['jobs']}, succeeded: {stats['succeeded']}")
    print(
        f"sync wall time (first trigger -> last job seen terminal): {sync_wall:.2f} s (target <= {target * 1.1:.2f} s)"
    )
    print(
        f"  of which spreading the {stats['jobs']} triggers over the task threads: "
        f"{stats['last_trigger'] - stats['first_trigger']:.2f} s"
    )
    print(f"whole flow run wall time (Prefect start, resolve, validate, hand off included): {wall:.2f} s")
    print(
        f"API requests per job (trigger + polls + cancel): {stats['job_requests'] / stats['jobs']:.2f} "
        f"(target <= {args.job_seconds / args.poll + 3:.0f}); all requests: {stats['all_requests']}"
    )
    print(f"flow process CPU: {cpu:.2f} s")
    if stats["violations"]:
        print(f"spec violations seen by the fake: {stats['violations']}")


def _start_fake(s3: S3Endpoint, args: argparse.Namespace) -> subprocess.Popen[str]:
    payload = {
        "s3": {"url": s3.url, "access_key": s3.access_key, "secret_key": s3.secret_key, "region": s3.region},
        "job_seconds": args.job_seconds,
        "connections": args.connections,
    }
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    return subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(payload)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
