"""Fault injection: two ``python -m flows.bronze`` runs of the same source started together (an operator's manual
run next to a scheduled one), embedded and on an Airbyte server. Both must end 0 and silver exact: one row per key,
every committed key, no orphaned part.

On one Prefect server the runs' silver steps take turns (the source's one-slot limit, ``tasks.silver``): an S3
proxy holds the first Delta commit to a new table until both runs have handed their batches off and reached silver;
meanwhile no other commit to that table reaches the store; released, one run creates the table and the other
merges after it. (Writers that do not share a Prefect server, creating a table at the same moment, are
``tests/test_silver_concurrency.py``'s: the loser's commit conflicts and is retried.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from support.faults import (
    FaultHarness,
    FlowProcess,
    Platform,
    assert_converged,
    fake_platform,
    fake_source,
    wait_until,
)
from support.s3_proxy import S3Proxy, S3Request

pytestmark = pytest.mark.faults

# The held commit waits for the other run to reach silver, which on a loaded machine can take longer than the 10 s a
# request may take under the harness's 30 s timeout (the client would give up on it and retry): 60 s a request, and
# the run without the slot waits for it as long as by default.
PATIENT = {"LAKE_S3_TIMEOUT_SECONDS": "180", "SILVER_SLOT_WAIT_SECONDS": "75"}


def commits_to(table: str) -> Callable[[S3Request], bool]:
    def match(request: S3Request) -> bool:
        return request.method == "PUT" and f"/{table}/_delta_log/" in f"/{request.key}"

    return match


def take_turns(proxy: S3Proxy, table: str, runs: list[FlowProcess]) -> None:
    """Hold the first commit to ``table`` until both runs reached silver; no other commit to it gets through."""
    first = proxy.hold(commits_to(table))
    first.wait(180, f"(a run creating silver {table})")
    for run in runs:
        wait_until(lambda run=run: "waiting for silver" in run.err, "both runs reached silver", timeout=180, flow=run)
    time.sleep(2)  # the run without the slot would commit now if it did not wait for it
    assert proxy.seen(commits_to(table)) == first.held, "the other run committed while the first held the slot"
    first.release()


def test_two_embedded_runs_at_once(faults: FaultHarness, proxy: S3Proxy) -> None:
    source = f"overlap_{uuid.uuid4().hex[:6]}"
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source))
    runs = [faults.start(lake, catalog, env={"AWS_ENDPOINT_URL": proxy.url, **PATIENT}) for _ in range(2)]
    take_turns(proxy, f"{source}/items", runs)
    codes = [run.wait() for run in runs]

    assert_converged(lake, source, {"items": set(range(50)), "others": set(range(50))})
    assert codes == [0, 0], [run.tail() for run in runs]


def test_two_platform_runs_at_once(faults: FaultHarness, proxy: S3Proxy) -> None:
    with fake_platform(faults, job_seconds=3) as platform:  # long enough for the second run to attach to the job
        two_platform_runs_at_once(platform, proxy)


def two_platform_runs_at_once(platform: Platform, proxy: S3Proxy) -> None:
    runs = [platform.start(env={"AWS_ENDPOINT_URL": proxy.url, **PATIENT}) for _ in range(2)]
    take_turns(proxy, f"{platform.source}/users", runs)
    codes = [run.wait() for run in runs]

    platform.assert_converged()
    assert codes == [0, 0], [run.tail() for run in runs]
    assert len(platform.jobs()) == 1, "the second run attaches to the first one's job"
