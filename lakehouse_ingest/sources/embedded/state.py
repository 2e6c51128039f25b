"""Connector state and stream generations, persisted per source in the bronze root.

State is committed only for streams whose batch was validated and handed off, so a stream that
failed is read again from its previous position on the next run: nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from lakehouse_ingest.lake.documents import ConnectorState, read_document, write_document
from lakehouse_ingest.lake.keys import state_key
from lakehouse_ingest.lake.storage import LakeStorage
from lakehouse_ingest.sources.protocol import state_stream_key, stream_descriptor_key


@dataclass
class SourceState:
    """What a source resumes from: per-stream STATE messages (or one GLOBAL/LEGACY), generations."""

    stream_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared_state: dict[str, Any] | None = None
    generations: dict[str, int] = field(default_factory=dict)
    last_sync_id: int | None = None

    def connector_state(self, full_refresh: Collection[str] = ()) -> list[dict[str, Any]] | None:
        """The ``--state`` document for the next read, or None on the first run.

        Streams in ``full_refresh`` (``namespace.name`` keys) get no state, as on the Airbyte platform: a full
        refresh reads everything again. Given its last position, a source would read nothing new and the
        overwrite would publish an empty snapshot.
        """
        states = [s for key, s in self.stream_states.items() if key not in full_refresh]
        if self.shared_state is not None:
            states.append(_without_streams(self.shared_state, full_refresh))
        return states or None

    def merge(
        self,
        messages: list[dict[str, Any]],
        committed_streams: set[str],
        all_committed: bool,
        full_refresh: Collection[str] = (),
    ) -> None:
        """Take the latest STATE of every committed stream (GLOBAL/LEGACY only when all streams are).

        A committed full-refresh stream keeps no state: a later switch to incremental must start from the
        beginning, not from a position a full-refresh read left (a resumable full refresh's page cursor, say).
        """
        for dropped in committed_streams & set(full_refresh):
            self.stream_states.pop(dropped, None)
        for state in messages:
            key = state_stream_key(state)
            if key is None:
                if all_committed:
                    self.shared_state = state
            elif key in committed_streams and key not in full_refresh:
                self.stream_states[key] = state


def _without_streams(state: dict[str, Any], streams: Collection[str]) -> dict[str, Any]:
    """A GLOBAL state without the per-stream entries of ``streams`` (other state types unchanged)."""
    shared = state.get("global")
    if state.get("type") != "GLOBAL" or not streams or not isinstance(shared, dict):
        return state
    kept = [
        entry
        for entry in shared.get("stream_states") or []
        if stream_descriptor_key(entry.get("stream_descriptor") or {}) not in streams
    ]
    return {**state, "global": {**shared, "stream_states": kept}}


def load_state(storage: LakeStorage, source: str) -> SourceState:
    """The persisted state of ``source`` (empty when it never synced)."""
    document = read_document(storage, state_key(source), ConnectorState)
    if document is None:
        return SourceState()
    return SourceState(
        stream_states=dict(document.stream_states),
        shared_state=document.shared_state,
        generations=dict(document.generations),
        last_sync_id=document.last_sync_id,
    )


def save_state(storage: LakeStorage, source: str, state: SourceState) -> None:
    """Persist ``state`` atomically."""
    document = ConnectorState(
        stream_states=state.stream_states,
        shared_state=state.shared_state,
        generations=state.generations,
        last_sync_id=state.last_sync_id,
    )
    write_document(storage, state_key(source), document)
