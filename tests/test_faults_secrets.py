"""Fault injection: no secret on disk after runs that were killed, failed and succeeded.

Every fault run of the session carries two secrets: the connector config's ``api_key`` (``airbyte_secret`` in the
fake connector's spec; an extra property for faker) and the Airbyte client secret. This test kills a run while its
connector reads (its config file, secret included, is on disk then: the grep finds it, so the grep works), runs
again with a connector that fails and a source on the fake Airbyte server, then greps every file those runs and
their connectors could have touched: the lake (every object of both buckets, read back through S3), the connector
cache (the fake connector's; the faker virtualenv's files changed during the session), the test's ``TMPDIR``, its
logs, and everything under the session's temporary root (other fault tests' ``TMPDIR`` and logs), the Prefect
home and results, and the Prefect test server's database.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from conftest import SESSION_DIR, SESSION_STARTED
from support.faults import (
    AIRBYTE_CLIENT_SECRET,
    CONNECTOR_SECRET,
    FaultHarness,
    assert_converged,
    fake_platform,
    fake_source,
    files_holding,
    wait_until,
)

pytestmark = pytest.mark.faults

SECRETS = {"connector config api_key": CONNECTOR_SECRET, "Airbyte client secret": AIRBYTE_CLIENT_SECRET}


def prefect_database_dir() -> Path:
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    assert url is not None
    return Path(url.get_secret_value().split(":///", 1)[1]).parent


def lake_objects_holding(faults: FaultHarness, secret: str) -> list[str]:
    client = faults.endpoint.boto3_client()
    found = []
    for bucket in ("bronze", "silver", "airbyte-logs"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                if secret.encode() in client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read():
                    found.append(f"s3://{bucket}/{item['Key']}")
    return found


def test_no_secret_left_anywhere(
    faults: FaultHarness, connector_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source, failing = f"secret_{uuid.uuid4().hex[:6]}", f"failing_{uuid.uuid4().hex[:6]}"
    with fake_platform(faults) as platform:
        lake = platform.lake()  # where the fake Airbyte's jobs land: one bronze root for the three sources
        killed = faults.start(lake, faults.catalog(fake_source(source, records=12_000, pause_after=100)))
        wait_until(lambda: any(" read " in cmd for _, cmd in killed.group()), "the connector reads", flow=killed)
        held = wait_until(lambda: files_holding(CONNECTOR_SECRET, [faults.tmpdir]), "its config on disk", flow=killed)
        killed.kill9()
        killed.reap()
        assert held, "the grep finds the secret where it is"

        catalog = faults.catalog(
            fake_source(source, records=50),
            fake_source(failing, fail_with="upstream refused the key"),
            {"name": platform.source, "connection_id": platform.connection_id},
        )
        again = faults.run(lake, catalog, env=platform.env)
        assert again.proc.returncode == 1, again.tail()
        errors = [line for line in again.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: 1 of "), again.tail()  # the failing source only
        assert errors[0].endswith(
            f": {failing} sync failed: connector read failed (exit 1): upstream refused the key (config_error)"
        ), errors
        assert_converged(lake, source, {"items": set(range(50)), "others": set(range(50))})
        platform.assert_converged()
        assert platform.airbyte.requests_to("/applications/token"), "the client secret was used"

    time.sleep(1)  # let the Prefect server write what the runs sent it
    roots = [
        faults.tmp,  # TMPDIR, logs, catalogs, the connector cache of this test
        tmp_path_factory.getbasetemp(),  # every test's TMPDIR and logs so far
        SESSION_DIR,  # Prefect home, results
        prefect_database_dir(),
    ]
    for what, secret in SECRETS.items():
        found = [str(p) for p in files_holding(secret, roots)]
        found += [str(p) for p in files_holding(secret, [connector_cache_dir], since=SESSION_STARTED)]
        found += lake_objects_holding(faults, secret)
        assert not found, f"the {what} is on disk: {found}"
