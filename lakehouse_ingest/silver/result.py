"""What applying one manifest did: the answer ``merge.apply_manifest`` gives the tasks and flows.

Its own module because both ways of applying a batch (``merge``, ``overwrite``) build it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SilverResult:
    """What applying one manifest did."""

    source: str
    stream: str
    sync_id: int
    table: str
    applied: bool
    rows_in: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    version: int | None = None
    skipped: str | None = None  # why a batch that was not applied before was not applied now (stale)
