"""Fault injection: two ``python -m flows.bronze`` runs of the same source started together (an operator's manual
run next to a scheduled one), embedded and on an Airbyte server. Whatever each run reports, silver must end
exact: one row per key, every committed key, no orphaned part.

Both runs reach a new silver table at the same moment: an S3 proxy holds the first Delta commit of each until
both are waiting, then lets them go together. One creates the table (version 0); the other's create fails (silver
creates a table with its first batch's own commit or not at all), its task retries and finds its batch applied:
both runs end 0, and the loser says so in its log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from support.faults import FaultHarness, Platform, assert_converged, fake_platform, fake_source
from support.s3_proxy import S3Proxy, S3Request

pytestmark = pytest.mark.faults

LOST_THE_CREATE = "another writer created the table first"  # what the losing run logs (CommitConflict, retried)
# The first run's commit is held until the second run's arrives, which on a loaded machine can take longer than the
# 10 s a request may take under the harness's 30 s timeout: the held request would time out in the client (then
# retried as a StorageError) and the two creates would not race. 60 s a request keeps the race.
PATIENT = {"LAKE_S3_TIMEOUT_SECONDS": "180"}


def first_commit_of(table: str) -> Callable[[S3Request], bool]:
    def match(request: S3Request) -> bool:
        return request.method == "PUT" and f"/{table}/_delta_log/" in f"/{request.key}"

    return match


def test_two_embedded_runs_at_once(faults: FaultHarness, proxy: S3Proxy) -> None:
    source = f"overlap_{uuid.uuid4().hex[:6]}"
    lake = faults.lake(source)
    catalog = faults.catalog(fake_source(source))
    together = proxy.hold(first_commit_of(f"{source}/items"), count=2)
    runs = [faults.start(lake, catalog, env={"AWS_ENDPOINT_URL": proxy.url, **PATIENT}) for _ in range(2)]
    together.wait(180, "(both runs creating silver items)")
    together.release()
    codes = [run.wait() for run in runs]

    assert_converged(lake, source, {"items": set(range(50)), "others": set(range(50))})
    assert codes == [0, 0], [run.tail() for run in runs]
    assert sum(LOST_THE_CREATE in run.err for run in runs) == 1, [run.tail() for run in runs]


def test_two_platform_runs_at_once(faults: FaultHarness, proxy: S3Proxy) -> None:
    with fake_platform(faults, job_seconds=3) as platform:  # long enough for the second run to attach to the job
        two_platform_runs_at_once(platform, proxy)


def two_platform_runs_at_once(platform: Platform, proxy: S3Proxy) -> None:
    together = proxy.hold(first_commit_of(f"{platform.source}/users"), count=2)
    runs = [platform.start(env={"AWS_ENDPOINT_URL": proxy.url, **PATIENT}) for _ in range(2)]
    together.wait(180, "(both runs creating silver users)")
    together.release()
    codes = [run.wait() for run in runs]

    platform.assert_converged()
    assert codes == [0, 0], [run.tail() for run in runs]
    assert sum(LOST_THE_CREATE in run.err for run in runs) == 1, [run.tail() for run in runs]
    assert len(platform.jobs()) == 1, "the second run attaches to the first one's job"
