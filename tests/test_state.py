"""Connector state: what a source resumes from, and what full-refresh streams must never be given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lakehouse_ingest.lake.local import LocalStorage
from lakehouse_ingest.sources.embedded.state import SourceState, load_state, save_state


def stream_state(name: str, position: int, namespace: str | None = None) -> dict[str, Any]:
    descriptor = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"type": "STREAM", "stream": {"stream_descriptor": descriptor, "stream_state": {"offset": position}}}


def global_state(*streams: tuple[str, int]) -> dict[str, Any]:
    entries = [{"stream_descriptor": {"name": n}, "stream_state": {"offset": p}} for n, p in streams]
    return {"type": "GLOBAL", "global": {"shared_state": {"lsn": 7}, "stream_states": entries}}


def test_first_run_has_no_state() -> None:
    assert SourceState().connector_state() is None
    assert SourceState().connector_state({"users"}) is None


def test_full_refresh_streams_are_read_without_their_state() -> None:
    stored = {"users": stream_state("users", 30), "shop.orders": stream_state("orders", 5, "shop")}
    state = SourceState(stream_states=stored)
    assert state.connector_state() == [stream_state("users", 30), stream_state("orders", 5, "shop")]
    assert state.connector_state({"users"}) == [stream_state("orders", 5, "shop")]
    assert state.connector_state({"shop.orders"}) == [stream_state("users", 30)]
    assert state.connector_state({"orders"}) == [stream_state("users", 30), stream_state("orders", 5, "shop")]
    assert state.connector_state({"users", "shop.orders"}) is None


def test_a_global_state_loses_only_the_full_refresh_streams_entries() -> None:
    shared = global_state(("users", 30), ("products", 10))
    state = SourceState(shared_state=shared)
    (read,) = state.connector_state({"users"}) or []
    assert read["global"]["shared_state"] == {"lsn": 7}
    assert [e["stream_descriptor"]["name"] for e in read["global"]["stream_states"]] == ["products"]
    assert len(shared["global"]["stream_states"]) == 2  # the stored state is not modified
    legacy = {"type": "LEGACY", "data": {"users": 1}}
    assert SourceState(shared_state=legacy).connector_state({"users"}) == [legacy]


def test_merge_keeps_no_state_for_committed_full_refresh_streams() -> None:
    state = SourceState(stream_states={"users": stream_state("users", 30), "products": stream_state("products", 3)})
    messages = [stream_state("users", 12), stream_state("products", 9), stream_state("purchases", 4)]
    state.merge(messages, {"users", "products"}, all_committed=False, full_refresh={"users", "purchases"})
    assert state.stream_states == {"products": stream_state("products", 9)}
    # an uncommitted full-refresh stream keeps what it had (its failed batch changed nothing)
    state = SourceState(stream_states={"users": stream_state("users", 30)})
    state.merge([stream_state("users", 12)], set(), all_committed=False, full_refresh={"users"})
    assert state.stream_states == {"users": stream_state("users", 30)}


def test_state_round_trips_through_the_lake(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    state = SourceState(
        stream_states={"users": stream_state("users", 30)},
        shared_state=global_state(("a", 1)),
        generations={"users": 2},
        last_sync_id=17,
    )
    save_state(storage, "faker", state)
    assert load_state(storage, "faker") == state
    assert json.loads((tmp_path / "_state" / "airbyte" / "faker" / "state.json").read_text())["last_sync_id"] == 17
    assert load_state(storage, "other") == SourceState()
