"""What runs, tags, artifacts and concurrency limits are called, so that the Prefect UI says what each run did.

- bronze runs: ``<deployment, or the sources>-<scheduled start, UTC, to the minute>`` (``faker-2026-12-07T10:00``);
- silver runs: ``silver-<source>.<stream>-<sync_id>`` for one batch, ``silver-<source>-<sync_id>`` for every
  stream of one sync, ``silver-<source>-<first>..<last>`` for several syncs, ``silver-<sources>-pending`` when the
  run looks the batches up itself;
- tags: ``source:<source>`` and ``stream:<source>.<stream>`` (filters in the Runs list);
- artifact keys: lowercase letters, digits and dashes (Prefect's rule);
- one global concurrency limit per source for silver, ``silver-source:<source>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from lakehouse_ingest.lake.keys import BatchKey

_NAME_BANNED = re.compile(r"[/%&><]")  # characters Prefect refuses in object names
_ARTIFACT_KEY = re.compile(r"[^a-z0-9-]+")
MAX_NAME = 120


def _short(text: str) -> str:
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def bronze_run_name(label: str | None, sources: Sequence[str] | None, when: datetime | None) -> str:
    """``faker-2026-12-07T10:00``: the deployment (a source or a group), else the sources, and when it was due."""
    who = label or ("+".join(sources) if sources else "all")
    stamp = (when or datetime.now(UTC)).astimezone(UTC)
    return _short(f"{who}-{stamp:%Y-%m-%dT%H:%M}")


def silver_run_name(batches: Sequence[BatchKey], sources: Sequence[str] | None = None) -> str:
    """A silver run's name from the batches it merges (or the sources it looks batches up for)."""
    if not batches:
        return _short(f"silver-{'+'.join(sources) if sources else 'all'}-pending")
    names = sorted({b.source for b in batches})
    streams = {(b.source, b.stream) for b in batches}
    ids = sorted({b.sync_id for b in batches})
    if len(streams) == 1:
        source, stream = next(iter(streams))
        who = f"{source}.{stream}"
    else:
        who = "+".join(names)
    when = str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
    return _short(f"silver-{who}-{when}")


def run_tags(sources: Iterable[str], streams: Iterable[tuple[str, str]] = ()) -> list[str]:
    """``source:<source>`` for each source, ``stream:<source>.<stream>`` for each stream, sorted, once each."""
    tags = {f"source:{s}" for s in sources} | {f"stream:{source}.{stream}" for source, stream in streams}
    return sorted(tags)


def artifact_key(*parts: str) -> str:
    """An artifact key from ``parts`` (Prefect allows lowercase letters, digits and dashes only)."""
    text = "-".join(parts).lower()
    return _ARTIFACT_KEY.sub("-", text).strip("-")


def source_limit_name(source: str) -> str:
    """The global concurrency limit (one slot) that keeps silver runs of one source, hence merges into one of its
    tables, from overlapping."""
    return _NAME_BANNED.sub("_", f"silver-source:{source}")
