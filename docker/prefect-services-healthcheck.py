"""Health check of the prefect-services container (`prefect server services start`, Prefect 3.8 and 3.9).

That process serves no HTTP. Its loop services (scheduler, triggers, late runs, ...) run as a Docket worker
on the Redis at PREFECT_SERVER_DOCKET_URL, under the docket name "prefect" (hard-coded in
`prefect.cli._server_utils._run_all_services`, the same in 3.8.8 and 3.9.1; the API server's own worker uses
"prefect-server"). A worker heartbeats every 2 s and Docket drops it after 5 missed heartbeats, so: healthy = a
worker of that docket was seen in the last ~10 s. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import asyncio
import os
import sys

from docket import Docket

DOCKET_NAME = os.environ.get("LAKEHOUSE_SERVICES_DOCKET_NAME", "prefect")


async def _live_workers(url: str) -> int:
    async with Docket(name=DOCKET_NAME, url=url) as docket:
        return len(await docket.workers())


def main() -> int:
    url = os.environ.get("PREFECT_SERVER_DOCKET_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        print(f"PREFECT_SERVER_DOCKET_URL must point at Redis, got {url!r}", file=sys.stderr)
        return 1
    try:
        workers = asyncio.run(asyncio.wait_for(_live_workers(url), timeout=8))
    except Exception as exc:
        print(f"docket {DOCKET_NAME!r} at {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not workers:
        print(f"no live worker on docket {DOCKET_NAME!r}: the services process is not running", file=sys.stderr)
        return 1
    print(f"{workers} live worker(s) on docket {DOCKET_NAME!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
