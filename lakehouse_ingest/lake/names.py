"""Names that end up in object keys and column names: validated or sanitized the way Airbyte does.

Source names are ours (catalog), so they are validated strictly. Stream names come from connectors, so
they are checked for anything that could escape the layout and otherwise made S3-safe, as Airbyte's
S3 destination does with ``${STREAM_NAME}``.
"""

from __future__ import annotations

import re
import unicodedata

from lakehouse_ingest.errors import ConfigError

_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_S3_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_AVRO_INVALID = re.compile(r"[^A-Za-z0-9_]")
_WHITESPACE = re.compile(r"\s+")


def validate_source_name(name: str) -> str:
    """Return ``name`` if it is a safe source name, else raise ConfigError naming the problem."""
    if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"invalid source name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, and no '..'"
        )
    return name


def safe_stream_dir(stream: str) -> str:
    """Map a connector's stream name to the folder name used under ``airbyte/<source>/``.

    Names that would escape the layout (empty, ``.``, ``..``, path separators, NUL) are refused;
    other unsafe characters become ``_`` like Airbyte's ``toS3SafeCharacters``.
    """
    if not stream or stream.strip() in {".", ".."} or any(c in stream for c in "/\\\x00"):
        raise ConfigError(f"stream name {stream!r} would escape the bronze layout")
    return _S3_UNSAFE.sub("_", stream)


def column_name(field: str) -> str:
    """Airbyte's Parquet column name for a JSON field (``toAlphanumericAndUnderscore`` + Avro-safe)."""
    decomposed = unicodedata.normalize("NFKD", field)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    name = _AVRO_INVALID.sub("_", _WHITESPACE.sub("_", stripped))
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def stream_key(name: str, namespace: str | None) -> str:
    """``namespace.name``, or ``name`` without a namespace: one key per stream across state and batches."""
    return f"{namespace}.{name}" if namespace else name
