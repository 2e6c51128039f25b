"""The Airbyte protocol as a connector prints it: one JSON message per line on stdout.

RECORD lines are routed by stream without a full JSON parse (the common ``{"type":"RECORD",...}``
key order is matched by a regex; anything else takes ``json.loads``); every other message is parsed.
Lines that are not JSON are connector chatter and are treated as log lines, as Airbyte's workers do.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lakehouse_ingest.lake.names import stream_key

_RECORD_START = re.compile(rb'\s*\{\s*"type"\s*:\s*"RECORD"\s*,\s*"record"\s*:\s*\{\s*"stream"\s*:\s*"([^"\\]*)"')


def fast_record_stream(line: bytes) -> str | None:
    """The stream of a RECORD line in the usual key order, or None when the line needs a full parse."""
    match = _RECORD_START.match(line)
    return match.group(1).decode() if match else None


def parse_message(line: bytes) -> dict[str, Any] | None:
    """The message on ``line``, or None when the line is not a JSON object (connector chatter)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("type"), str) else None


def trace_error_message(message: dict[str, Any]) -> str | None:
    """The connector's own error message of a TRACE error message, else None."""
    trace = message.get("trace") or {}
    if message.get("type") != "TRACE" or trace.get("type") != "ERROR":
        return None
    error = trace.get("error") or {}
    text = error.get("message") or error.get("internal_message") or "connector reported an error"
    failure = error.get("failure_type")
    return f"{text} ({failure})" if failure else str(text)


def state_stream_key(state: dict[str, Any]) -> str | None:
    """``namespace.name`` for a STREAM state, None for GLOBAL or LEGACY states."""
    if state.get("type") != "STREAM":
        return None
    return stream_descriptor_key((state.get("stream") or {}).get("stream_descriptor") or {})


def stream_descriptor_key(descriptor: dict[str, Any]) -> str:
    """``namespace.name`` (or ``name``) of a protocol StreamDescriptor: how state names a stream."""
    return stream_key(str(descriptor.get("name")), descriptor.get("namespace"))
