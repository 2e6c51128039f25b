"""One silver run per bronze run and source, carrying every manifest that run handed off.

Each stream batch still gets its ``bronze.batch.validated`` event (the handoff contract). Silver, though, is
started by one ``bronze.batches.validated`` event per source and bronze run, sent once every stream of that
source is validated and handed off: its payload lists all their manifests, and the silver run merges them with
the streams side by side. A source with 20 streams then costs one flow run (one worker pickup, one process start)
instead of 20 runs queued one after the other behind a concurrency limit of one.

Merges of one table never overlap, whichever runs they belong to: a silver run holds its sources' one-slot global
concurrency limits while it merges (``runs.naming.source_limit_name``), and merges a table's batches one after the
other. Exactly once is the Delta table's business as before (the batch is recorded in the commit; a lost commit
race is retried).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lakehouse_ingest.lake.keys import parse_manifest_location

EVENT_BATCHES_VALIDATED = "bronze.batches.validated"

# The silver deployment's parameters, rendered by its automation from the triggering event: the manifests as a
# JSON list (Prefect's "json" template kind; a plain template would render one string), the silver root as text.
TRIGGER_PARAMETERS: dict[str, Any] = {
    "manifests": {
        "__prefect_kind": "json",
        "value": {"__prefect_kind": "jinja", "template": "{{ event.payload.manifests | tojson }}"},
    },
    "silver": "{{ event.payload.silver_root }}",
}


def source_resource(source: str) -> dict[str, str]:
    """The event resource of a source's hand-offs (``bronze.source.<source>``)."""
    return {"prefect.resource.id": f"bronze.source.{source}", "prefect.resource.name": source, "source": source}


def batches_event(source: str, manifests: Sequence[str], bronze_root: str, silver_root: str) -> dict[str, Any]:
    """The ``bronze.batches.validated`` event (name, resource, payload) announcing a run's manifests of a source."""
    batches = sorted(parse_manifest_location(m)[1] for m in manifests)
    return {
        "event": EVENT_BATCHES_VALIDATED,
        "resource": source_resource(source),
        "payload": {
            "source": source,
            "manifests": list(manifests),
            "streams": sorted({b.stream for b in batches}),
            "sync_ids": sorted({b.sync_id for b in batches}),
            "bronze_root": bronze_root,
            "silver_root": silver_root,
        },
    }
