"""Fault injection, sources on an Airbyte server: ``python -m flows.bronze`` killed with ``kill -9`` at each stage
(awaiting the job, validating, between two streams' manifests, merging into silver) on a connection's first run,
then run again. The fake Airbyte (``tests/support/fake_airbyte``, real HTTP on loopback) lives in the test
process, so its jobs go on when the flow dies, as Airbyte's do; each job writes rows with ids of its own, so a job
lost on the way to silver shows as missing keys.

After the re-run: silver holds exactly the keys of every job Airbyte committed, once; the raw folders hold
exactly the manifests' files; the connection's job ledger has every job handed off and nothing in flight.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from support.faults import PLATFORM_STREAMS as STREAMS
from support.faults import SLOT_WAIT, FaultHarness, Platform, assert_converged, fake_platform, wait_until
from support.s3_proxy import S3Proxy, S3Request

pytestmark = pytest.mark.faults


@pytest.fixture
def platform(faults: FaultHarness, request: pytest.FixtureRequest) -> Iterator[Platform]:
    marker = request.node.get_closest_marker("job_seconds")
    with fake_platform(faults, job_seconds=marker.args[0] if marker else 0.5) as found:
        yield found


def rerun_converges(platform: Platform) -> None:
    rerun = platform.start()
    assert rerun.wait() == 0, rerun.tail()
    assert len(platform.jobs()) == 2
    platform.assert_converged()


@pytest.mark.job_seconds(4.0)
def test_first_run_killed_while_awaiting(platform: Platform) -> None:
    """The job runs on Airbyte and the flow is polling it: killed. The job ends on Airbyte without anyone
    watching; the re-run hands it off with its own job."""
    run = platform.start()

    def polled() -> bool:
        jobs = platform.jobs()
        polls = platform.airbyte.requests_to("/jobs/get_without_logs")
        return bool(jobs) and jobs[0].status == "running" and bool(polls)

    wait_until(polled, "the job is running and polled", flow=run)
    run.kill9()
    platform.airbyte.wait_for_job(platform.jobs()[0].id, timeout=30)
    ledger = platform.ledger()
    assert ledger is not None and ledger["in_flight"] == [platform.jobs()[0].id]  # recorded before awaiting

    rerun_converges(platform)


def is_report_write(request: S3Request) -> bool:
    return request.method == "PUT" and "/_reports/" in request.key


def test_first_run_killed_while_validating(platform: Platform, proxy: S3Proxy) -> None:
    """The job succeeded; a stream's validation is done and its report is being written (held): killed."""
    hold = proxy.hold(is_report_write)
    run = platform.start(env={"AWS_ENDPOINT_URL": proxy.url})
    hold.wait(120, "(a report write)")
    run.kill9()
    hold.release()
    assert not any(platform.lake().manifests(platform.source, s) for s in STREAMS)

    rerun_converges(platform)


def is_manifest_write(request: S3Request) -> bool:
    return request.method == "PUT" and "/_manifests/" in request.key


def test_first_run_killed_between_two_manifests(platform: Platform, proxy: S3Proxy) -> None:
    """The job's first stream is handed off, the second stream's manifest write is held: killed. The re-run hands
    the job's other stream off (the issue: it was never handed off)."""
    hold = proxy.hold(is_manifest_write, skip=1)
    run = platform.start(env={"AWS_ENDPOINT_URL": proxy.url})
    hold.wait(120, "(the second manifest write)")
    run.kill9()
    hold.release()
    assert sum(bool(platform.lake().manifests(platform.source, s)) for s in STREAMS) == 1

    rerun_converges(platform)


def is_delta_commit(request: S3Request) -> bool:
    return request.method == "PUT" and "/_delta_log/" in request.key


def test_first_run_killed_while_merging(platform: Platform, proxy: S3Proxy) -> None:
    """Bronze handed both streams off and recorded the job; silver's first commit is held: killed."""
    hold = proxy.hold(is_delta_commit)
    run = platform.start(env={"AWS_ENDPOINT_URL": proxy.url})
    hold.wait(120, "(a silver commit)")
    run.kill9()
    hold.release()
    assert all(platform.lake().manifests(platform.source, s) for s in STREAMS)

    rerun_converges(platform)
    waited = f"silver slot(s) silver-source:{platform.source} still taken after {SLOT_WAIT} s"
    assert waited in platform.faults.runs[-1].err  # the killed run's slot, never freed on the test server


def test_later_run_killed_between_two_manifests(platform: Platform, proxy: S3Proxy) -> None:
    """The connection has a ledger (a first run handed its job off); the next run's job is half handed off when the
    run is killed. The re-run hands off the rest of it, and its own job."""
    first = platform.start()
    assert first.wait() == 0, first.tail()
    hold = proxy.hold(is_manifest_write, skip=1)
    run = platform.start(env={"AWS_ENDPOINT_URL": proxy.url})
    hold.wait(120, "(the second manifest write of the second job)")
    run.kill9()
    hold.release()
    ledger = platform.ledger()
    assert ledger is not None and ledger["watermark"] == 1 and ledger["in_flight"] == [2], ledger

    rerun = platform.start()
    assert rerun.wait() == 0, rerun.tail()
    assert len(platform.jobs()) == 3
    platform.assert_converged()


def test_a_restored_server_whose_job_ids_restart_is_reported(platform: Platform) -> None:
    """The lake is pointed at the Airbyte server restored from a backup taken before its first job: the server
    counts job ids from 1 again. (The handed-off job 1 is made an hour older in the ledger, as it would be: the
    ledger tells a reused id by a creation time past the recorded job's plus a clock-skew margin.) The run whose
    own job is the first reused id reports it, one line naming the source, the job and what to do, and hands
    nothing off: its batches would take the place of the first job 1's. Every later run refuses before it triggers
    anything (exit 2). Silver keeps exactly what the first job committed."""
    first = platform.start()
    assert first.wait() == 0, first.tail()
    lake, source = platform.lake(), platform.source
    committed = platform.committed()
    before = {stream: (lake.manifests(source, stream), lake.data_files(source, stream)) for stream in STREAMS}
    with platform.airbyte.state.lock:  # the restore: no job history, ids from 1 again
        platform.airbyte.state.jobs.clear()
        platform.airbyte.state.next_job_id = 1
    ledger = platform.ledger()
    assert ledger is not None and ledger["watermark"] == 1
    created = datetime.fromisoformat(ledger["watermark_created_at"]) - timedelta(hours=1)
    ledger_key = f"_state/airbyte/{source}/jobs/{platform.connection_id}.json"
    lake.write(ledger_key, json.dumps({**ledger, "watermark_created_at": created.isoformat()}).encode())

    reused = platform.start()
    assert reused.wait() == 1, reused.tail()
    errors = [line for line in reused.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, reused.tail()
    assert f"source '{source}': the job ids of connection {platform.connection_id} went backwards (job 1 " in errors[0]
    assert "point this source at a new connection or a new bronze prefix" in errors[0]
    (job,) = platform.jobs()
    assert job.status == "succeeded"  # it ran and committed: its files are in bronze, never handed off
    landed = {}
    for stream in STREAMS:
        manifests, files = before[stream]
        assert lake.manifests(source, stream) == manifests  # nothing handed off, nothing replaced
        landed[stream] = lake.data_files(source, stream) - files
        assert landed[stream], stream
    assert_converged(lake, source, committed, set_aside=landed)

    refused = platform.start()
    assert refused.wait() == 2, refused.tail()
    why = errors[0].split(f" {source} could not be planned: ", 1)[1]
    assert [line for line in refused.err.splitlines() if line.startswith("error:")] == [f"error: {why}"]
    assert len(platform.jobs()) == 1, "refused before triggering"
