"""A fake Airbyte server for tests: real HTTP on 127.0.0.1, the Config API and the public API.

It runs a Starlette app under uvicorn in a background thread (one event loop, so hundreds of concurrent
connections are fine) and keeps its state behind one lock that the test thread shares. Jobs move through
Airbyte's statuses in real time, driven by a ticker thread::

    pending → (queued) → running → (incomplete → running)* → succeeded | failed | cancelled

Shapes follow the airbyte-platform v2.0.0 OpenAPI documents, ``shared/reference/airbyte-contract.md`` and what
the platform's own converters send (research ``/tmp/research/airbyte-identity.md``; real-shape examples in
``tests/airbyte-payloads``, compared with the fake's answers by ``tests/test_airbyte_payloads.py``): epoch-second
timestamps (FailureReason.timestamp in ms), 0-based attempt ids, stats only once an attempt ends (``jobs/list``
shows in-progress numbers), per-stream stats under the source's stream name (namespaces only where the platform
sends them), ``aliasName`` recomputed on every read, destination-s3 folders named ``toS3SafeCharacters(prefix +
name)``, 409 "A sync is already running for: <id>" in the body of several server versions (also while a reset
runs), the slow ``connections/sync``, Basic / bearer / client-credentials auth and both token endpoints. Every
request and response is checked against the spec (:mod:`support.openapi_check`); problems land in
:attr:`FakeAirbyte.spec_violations`, which tests assert stays empty. What a real server is known to send outside
the spec (a proxy's empty 204 or 502, a token 201, an unknown status, attempts without ids) is only sent when a
test plans it, and is recorded as ``injected`` like a planned fault.

Older server generations are a choice too (``stats_shape``: "current", "legacy_totals", "prefixed", "none").

Usage::

    with FakeAirbyte(job_seconds=0.2) as airbyte:
        conn = airbyte.add_connection("faker", streams=["users", "products"])
        httpx.post(airbyte.url + "/api/v1/connections/sync", json={"connectionId": conn})
        ...
        assert airbyte.spec_violations == []

Where things live:

- ``server``: :class:`FakeAirbyte`, what tests use (setup, planned faults, inspection); ``loopback`` runs uvicorn.
- ``state``: the options, Airbyte's objects, the tests' plans and the traffic seen; ``job_machine``: the jobs'
  statuses over time and the ticker that calls the writer.
- ``naming``: Airbyte's name rules, written here (not imported from the code under test): aliasName,
  toS3SafeCharacters, the name and namespace the destination receives; ``catalog``: a connection's configured
  streams as stored and as read back.
- ``gateway``: what every request goes through around its route (spec checks, faults, replies replaced after the
  handler ran, auth, 404/405, recording);
  ``routing``: the handlers' Call and Reply, and how a handler becomes a Starlette route.
- The routes: ``auth`` (health and tokens), ``config_jobs``, ``config_connections``, ``config_provisioning``,
  ``public_api``; the bodies they answer: ``payloads`` and ``errors``; list filters and pages: ``paging``.
- ``s3_writer``: a writer that lands Airbyte-layout Parquet in the S3 test server.

This package re-exports what tests import (below); everything else is imported from its module.
"""

from support.fake_airbyte.config_provisioning import SECRET_MASK
from support.fake_airbyte.s3_writer import airbyte_s3_writer
from support.fake_airbyte.server import FakeAirbyte
from support.fake_airbyte.state import (
    DEFAULT_ORGANIZATION_ID,
    FAKER_DEFINITION_ID,
    S3_DEFINITION_ID,
    STREAM_JSON_SCHEMA,
    TERMINAL_STATUSES,
    WRITE_OPERATIONS,
    FakeActor,
    FakeAttempt,
    FakeConnection,
    FakeDefinition,
    FakeJob,
    FakeStream,
    FakeWorkspace,
    RecordedRequest,
    Writer,
)

__all__ = [
    "DEFAULT_ORGANIZATION_ID",
    "FAKER_DEFINITION_ID",
    "S3_DEFINITION_ID",
    "SECRET_MASK",
    "STREAM_JSON_SCHEMA",
    "TERMINAL_STATUSES",
    "WRITE_OPERATIONS",
    "FakeActor",
    "FakeAirbyte",
    "FakeAttempt",
    "FakeConnection",
    "FakeDefinition",
    "FakeJob",
    "FakeStream",
    "FakeWorkspace",
    "RecordedRequest",
    "Writer",
    "airbyte_s3_writer",
]
