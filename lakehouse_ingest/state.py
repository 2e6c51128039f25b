"""Connector state and stream generations, persisted per source in the bronze root.

State is committed only for streams whose batch was validated and handed off, so a stream that
failed is read again from its previous position on the next run: nothing is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .layout import state_key
from .protocol import state_stream_key
from .storage import LakeStorage


@dataclass
class SourceState:
    """What a source resumes from: per-stream STATE messages (or one GLOBAL/LEGACY), generations."""

    stream_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared_state: dict[str, Any] | None = None
    generations: dict[str, int] = field(default_factory=dict)
    last_sync_id: int | None = None

    def connector_state(self) -> list[dict[str, Any]] | None:
        """The ``--state`` document for the next read, or None on the first run."""
        states = list(self.stream_states.values())
        if self.shared_state is not None:
            states.append(self.shared_state)
        return states or None

    def merge(self, messages: list[dict[str, Any]], committed_streams: set[str], all_committed: bool) -> None:
        """Take the latest STATE of every committed stream (GLOBAL/LEGACY only when all streams are)."""
        for state in messages:
            key = state_stream_key(state)
            if key is None:
                if all_committed:
                    self.shared_state = state
            elif key in committed_streams:
                self.stream_states[key] = state


def load_state(storage: LakeStorage, source: str) -> SourceState:
    """The persisted state of ``source`` (empty when it never synced)."""
    try:
        raw = json.loads(storage.get_bytes(state_key(source)))
    except FileNotFoundError:
        return SourceState()
    return SourceState(
        stream_states=dict(raw.get("stream_states") or {}),
        shared_state=raw.get("shared_state"),
        generations={k: int(v) for k, v in (raw.get("generations") or {}).items()},
        last_sync_id=raw.get("last_sync_id"),
    )


def save_state(storage: LakeStorage, source: str, state: SourceState) -> None:
    """Persist ``state`` atomically."""
    document = {
        "stream_states": state.stream_states,
        "shared_state": state.shared_state,
        "generations": state.generations,
        "last_sync_id": state.last_sync_id,
    }
    storage.put_bytes(state_key(source), json.dumps(document, indent=2, sort_keys=True).encode())
