"""What differs between the server and the declaration, on the fields managed here only, secrets masked.

Comparing only what provisioning sets is what makes a second run write nothing. Airbyte never reads secrets back
(``**********``): a masked secret counts as unchanged, so a rotated key is only sent with ``update_secrets``
(``--update-secrets``). Every value shown to people goes through here, so a secret is always ``***``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lakehouse_ingest.provisioning.desired import NAMESPACE_DEFINITION, SCHEDULE_TYPE, describe_stream
from lakehouse_ingest.provisioning.plan import FieldChange
from lakehouse_ingest.provisioning.target import MUST_BE_ABSENT
from lakehouse_ingest.sources.airbyte.provisioning_models import (
    SECRET_MASK,
    ConnectionConfig,
    DiscoveredCatalog,
    StreamSyncConfig,
)

# Keys whose values are treated as secrets in source configurations (besides what the server masks).
_SECRET_KEY = re.compile(
    r"(?i)(password|secret|token|api_?key|access_?key|private_?key|passphrase|credentials_json|service_account)"
)
SHOWN_SECRET = "***"  # noqa: S105 - how a secret is shown, not a secret


def diff_connection(
    actual: ConnectionConfig,
    name: str | None,
    streams: dict[str, StreamSyncConfig],
    catalog: DiscoveredCatalog | None = None,
) -> list[FieldChange]:
    """The managed fields of ``actual`` that differ from what is declared.

    A cursor or primary key the source defines itself may be stored empty (the server falls back to the
    source's): that is no difference.
    """
    changes = []
    wanted_top = {
        "name": (actual.name, name if name is not None else actual.name),
        "scheduleType": (actual.schedule_type, SCHEDULE_TYPE),
        "namespaceDefinition": (actual.namespace_definition, NAMESPACE_DEFINITION),
        "prefix": (actual.prefix, ""),
        "status": (actual.status, "active"),
    }
    for path, (before, after) in wanted_top.items():
        if before != after:
            changes.append(FieldChange(path, _shown(before), _shown(after)))
    for stream in sorted(set(actual.streams) | set(streams)):
        before_stream, after_stream = actual.streams.get(stream), streams.get(stream)
        discovered = catalog.stream(stream) if catalog is not None else None
        if before_stream is not None and after_stream is not None and discovered is not None:
            if discovered.source_defined_cursor and not before_stream.cursor_field:
                before_stream = replace(before_stream, cursor_field=after_stream.cursor_field)
            if discovered.source_defined_primary_key and not before_stream.primary_key:
                before_stream = replace(before_stream, primary_key=after_stream.primary_key)
        if before_stream == after_stream:
            continue
        if before_stream is None or after_stream is None:
            changes.append(
                FieldChange(
                    f"streams.{stream}",
                    describe_stream(before_stream) if before_stream else "(not synced)",
                    describe_stream(after_stream) if after_stream else "(not synced)",
                )
            )
            continue
        for attr, label in (
            ("sync_mode", "sync_mode"),
            ("destination_sync_mode", "destination_sync_mode"),
            ("cursor_field", "cursor_field"),
            ("primary_key", "primary_key"),
        ):
            old, new = getattr(before_stream, attr), getattr(after_stream, attr)
            if old != new:
                changes.append(FieldChange(f"streams.{stream}.{label}", _shown(old), _shown(new)))
    return changes


def _is_secret(key: str, actual: object, secret_keys: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
    return key in secret_keys or bool(_SECRET_KEY.search(key)) or actual == SECRET_MASK


def diff_config(
    desired: Mapping[str, Any],
    actual: Mapping[str, Any],
    secret_keys: frozenset[str] | set[str] | tuple[str, ...],
    update_secrets: bool,
    must_be_absent: tuple[str, ...] = MUST_BE_ABSENT,
    path: str = "",
) -> list[FieldChange]:
    """What differs in the keys ``desired`` sets (nested objects key by key); secrets rendered ``***``.

    Airbyte reads secrets back as ``**********``: such a value counts as equal unless ``update_secrets``.
    Keys of ``actual`` that ``desired`` does not set are left alone, except ``must_be_absent`` ones.
    """
    changes: list[FieldChange] = []
    for key, want in desired.items():
        where = f"{path}{key}"
        have = actual.get(key, _ABSENT)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            changes += diff_config(want, have, secret_keys, update_secrets, (), where + ".")
            continue
        if _is_secret(key, have, secret_keys) and not isinstance(want, Mapping):
            if have is _ABSENT:
                changes.append(FieldChange(where, "(unset)", SHOWN_SECRET))
            elif have == SECRET_MASK:
                if update_secrets:
                    changes.append(FieldChange(where, SHOWN_SECRET, SHOWN_SECRET + " (rewritten)"))
            elif have != want:
                changes.append(FieldChange(where, SHOWN_SECRET, SHOWN_SECRET))
            continue
        if have != want:
            before = "(unset)" if have is _ABSENT else _shown(_masked(have, secret_keys))
            changes.append(FieldChange(where, before, _shown(_masked(want, secret_keys))))
    for key in must_be_absent:
        if key in actual and key not in desired:
            changes.append(FieldChange(f"{path}{key}", _shown(actual[key]), "(unset)"))
    return changes


class _Absent:
    def __repr__(self) -> str:
        return "(unset)"


_ABSENT: Any = _Absent()


def _masked(value: Any, secret_keys: frozenset[str] | set[str] | tuple[str, ...]) -> Any:
    """``value`` with secret leaves replaced by ``***`` (for rendering only)."""
    if isinstance(value, Mapping):
        return {
            k: SHOWN_SECRET
            if _is_secret(str(k), v, secret_keys) and not isinstance(v, Mapping | list)
            else _masked(v, secret_keys)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v, secret_keys) for v in value]
    return value


def config_listing(
    config: Mapping[str, Any], secret_keys: frozenset[str] | set[str] | tuple[str, ...], path: str = ""
) -> list[FieldChange]:
    """Every leaf of a configuration to be created, secrets as ``***``."""
    fields = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            fields += config_listing(value, secret_keys, f"{path}{key}.")
        else:
            shown = SHOWN_SECRET if _is_secret(str(key), value, secret_keys) else _shown(_masked(value, secret_keys))
            fields.append(FieldChange(f"{path}{key}", "", shown))
    return fields


def secret_values(config: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The values of ``config`` that are secrets (to scrub from any message)."""
    found = []
    for key, value in config.items():
        have = actual.get(key) if isinstance(actual, Mapping) else None
        if isinstance(value, Mapping):
            found += secret_values(value, have if isinstance(have, Mapping) else {})
        elif isinstance(value, str) and value and _is_secret(str(key), have, ()):
            found.append(value)
    return found


def _shown(value: Any) -> str:
    """A value as people read it: strings as they are (empty as ``""``), the rest as compact JSON."""
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, tuple):
        value = [list(v) if isinstance(v, tuple) else v for v in value]
    text = json.dumps(value, separators=(", ", ": "), default=str)
    return text if len(text) <= 160 else text[:160] + "..."
