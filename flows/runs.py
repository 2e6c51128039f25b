"""What a flow run is called and tagged, from its parameters (names and tags: ``lakehouse_ingest.runs.naming``).

The name callables run before the flow body, on parameters nobody has checked yet: they never raise (a run
with bad parameters keeps a readable name and fails in the body with a one-line reason).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prefect import get_client
from prefect.context import FlowRunContext
from prefect.logging import get_logger
from prefect.runtime import deployment, flow_run

from lakehouse_ingest.errors import IngestError
from lakehouse_ingest.lake.keys import BatchKey, parse_manifest_location
from lakehouse_ingest.runs import naming

_log = get_logger("flows.runs")


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v).strip()]
    return []


def _when() -> datetime | None:
    scheduled = flow_run.scheduled_start_time
    return scheduled if isinstance(scheduled, datetime) else None


def bronze_run_name() -> str:
    """``faker-2026-12-07T10:00``: the deployment's name (a source or a group), else the sources; when it was due."""
    try:
        label = deployment.name if deployment.id else None
        return naming.bronze_run_name(label, _names(flow_run.parameters.get("sources")), _when())
    except Exception as exc:  # a name is never worth failing a run for
        _log.debug("bronze run name: %s", exc)
        return naming.bronze_run_name(None, None, None)


def manifest_batches(manifests: Iterable[str]) -> list[BatchKey]:
    """The batches that manifest locations name (those that do not parse are left out)."""
    batches = []
    for location in manifests:
        try:
            batches.append(parse_manifest_location(location)[1])
        except IngestError:
            continue
    return batches


def silver_run_name() -> str:
    """``silver-faker.users-<sync_id>`` for one batch, ``silver-faker-<sync_id>`` for every stream of one sync."""
    try:
        parameters = flow_run.parameters
        batches = manifest_batches(_names(parameters.get("manifests")))
        return naming.silver_run_name(batches, _names(parameters.get("sources")))
    except Exception as exc:
        _log.debug("silver run name: %s", exc)
        return naming.silver_run_name([])


def revalidate_run_name() -> str:
    """``revalidate-<SOURCE/STREAM/SYNC_ID>`` (the first batch, and how many more)."""
    batches = _names(flow_run.parameters.get("batches"))
    more = f"+{len(batches) - 1}" if len(batches) > 1 else ""
    return f"revalidate-{batches[0] if batches else 'nothing'}{more}".replace("/", ".")


def tag_this_run(tags: Iterable[str]) -> None:
    """Add ``tags`` to the current flow run (the Runs list filters on them); a failure only logs."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    wanted = sorted(set(run.tags) | set(tags))
    if wanted == sorted(run.tags):
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, tags=wanted)
        run.tags = wanted
    except Exception as exc:  # tags help people find runs; they are not worth failing one
        _log.warning("flow run %s not tagged %s: %s", run.name, ", ".join(tags), exc)
