"""Names that end up in object keys and column names, validated or sanitized exactly as Airbyte does.

Source names are ours (catalog), so they are validated strictly. Stream names come from connectors and Airbyte,
so they are checked for anything that would escape the layout, then made S3-safe with the rule Airbyte's S3
destination applies to ``${STREAM_NAME}``:

- ``to_s3_safe``: airbytehq/airbyte ``airbyte-cdk/bulk/core/load/src/main/kotlin/io/airbyte/cdk/load/data/
  Transformations.kt`` ``toS3SafeCharacters`` (used by the bulk CDK's ``ObjectStoragePathFactory`` for
  ``${STREAM_NAME}`` and ``${NAMESPACE}``; the legacy Java CDK's ``S3NameTransformer.convertStreamName`` is the
  same): Unicode NFKD, combining marks (category M) dropped, then each character outside ``A-Za-z0-9`` and
  ``/ ! _ . * ' ) ( & $ @ = ; : + , ? -`` becomes one ``_`` (spaces are not collapsed).
- ``to_alphanumeric_and_underscore``: airbytehq/airbyte-platform ``airbyte-commons/src/main/kotlin/io/airbyte/
  commons/text/Names.kt`` ``toAlphanumericAndUnderscore``: NFKD, marks dropped, each run of whitespace one ``_``,
  anything else outside ``[A-Za-z0-9_]`` one ``_``. The platform fills a connection stream's ``aliasName`` with it
  (``CatalogConverter.toApi``) and never uses ``aliasName`` to name anything; Airbyte's Parquet column names start
  from it too.
"""

from __future__ import annotations

import re
import unicodedata

from lakehouse_ingest.errors import ConfigError

_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_S3_UNSAFE = re.compile(r"[^A-Za-z0-9/!_.*')(&$@=;:+,?\-]")
_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9_]")
_JAVA_WHITESPACE = re.compile(r"[ \t\n\x0b\f\r]+")  # java.util.regex ``\s``: ASCII whitespace only


def validate_source_name(name: str) -> str:
    """Return ``name`` if it is a safe source name, else raise ConfigError naming the problem."""
    if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"invalid source name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, and no '..'"
        )
    return name


def _without_marks(text: str) -> str:
    """NFKD with every combining mark removed (Java's ``\\p{M}``: by category, not by combining class)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.category(c).startswith("M"))


def to_s3_safe(name: str) -> str:
    """Airbyte's ``toS3SafeCharacters`` (see the module docstring)."""
    return _S3_UNSAFE.sub("_", _without_marks(name))


def to_alphanumeric_and_underscore(name: str) -> str:
    """Airbyte's ``Names.toAlphanumericAndUnderscore`` (see the module docstring)."""
    return _NOT_ALPHANUMERIC.sub("_", _JAVA_WHITESPACE.sub("_", _without_marks(name)))


def check_stream_name(stream: str) -> str:
    """Refuse a stream name that would escape the bronze layout (empty, ``.``, ``..``, a path separator, NUL).

    Airbyte itself would write a ``/`` in a name as sub-folders; this project refuses it so that one stream is
    always one folder (its manifests, reports and silver table are addressed by that folder).
    """
    if not stream or stream.strip() in {".", ".."} or any(c in stream for c in "/\\\x00"):
        raise ConfigError(f"stream name {stream!r} would escape the bronze layout")
    return stream


def safe_stream_dir(stream: str) -> str:
    """The folder of a stream under ``airbyte/<source>/``: the name the destination receives, made S3-safe as
    Airbyte's S3 destination does (``to_s3_safe``), after refusing names that would escape the layout."""
    return to_s3_safe(check_stream_name(stream))


def column_name(field: str) -> str:
    """Airbyte's Parquet column name for a JSON field (``toAlphanumericAndUnderscore`` + Avro-safe first char)."""
    name = to_alphanumeric_and_underscore(field)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def stream_key(name: str, namespace: str | None) -> str:
    """``namespace.name``, or ``name`` without a namespace: one key per stream across state and batches."""
    return f"{namespace}.{name}" if namespace else name
