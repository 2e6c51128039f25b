"""How the fake Airbyte names a connection's streams, written here on purpose rather than imported from the code
under test (a double that shared ``lakehouse_ingest``'s identity code could not catch a mistake in it).

The rules are Airbyte's own (research: ``/tmp/research/airbyte-identity.md`` rules 1-3):

- :func:`alias_name` is airbyte-platform ``airbyte-commons/src/main/kotlin/io/airbyte/commons/text/Names.kt``
  ``toAlphanumericAndUnderscore``: the ``aliasName`` every Config API read recomputes
  (``CatalogConverter.toApi`` / ``generateDefaultConfiguration``); nothing names anything after it.
- :func:`s3_folder` is airbytehq/airbyte ``airbyte-cdk/bulk/core/load/.../data/Transformations.kt``
  ``toS3SafeCharacters`` (the same as the legacy CDK's ``S3NameTransformer.convertStreamName``): what
  destination-s3 puts in place of ``${STREAM_NAME}``.
- :func:`received_name` / :func:`received_namespace` are airbyte-platform
  ``airbyte-commons-worker/src/main/kotlin/io/airbyte/workers/internal/Mapper.kt`` (``NamespacingMapper``): the
  name (``prefix + name`` unless the prefix is blank) and namespace the destination receives.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Java's \p{Alnum} without UNICODE_CHARACTER_CLASS is ASCII only.
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# Transformations.kt: S3_SAFE_CHARACTERS = "\\p{Alnum}/!_.*')(" and S3_SPECIAL_CHARACTERS = "&$@=;:+,?-"
_S3_KEEP = _ASCII_ALNUM | frozenset("/!_.*')(") | frozenset("&$@=;:+,?-")
_JAVA_SPACE = frozenset(" \t\n\x0b\f\r")  # java.util.regex \s


def _decomposed(text: str) -> list[str]:
    """NFKD, then every code point of category M (Mn, Mc, Me: Java's ``\\p{M}``) dropped."""
    return [c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c)[0] != "M"]


def alias_name(name: str) -> str:
    """``Names.toAlphanumericAndUnderscore``: a run of whitespace is one ``_``, any other character outside
    ``[A-Za-z0-9_]`` one ``_`` each."""
    out: list[str] = []
    in_space = False
    for char in _decomposed(name):
        if char in _JAVA_SPACE:
            if not in_space:
                out.append("_")
            in_space = True
            continue
        in_space = False
        out.append(char if char in _ASCII_ALNUM or char == "_" else "_")
    return "".join(out)


def s3_folder(name: str) -> str:
    """``toS3SafeCharacters``: each character outside Airbyte's S3-safe set becomes one ``_`` (no collapsing)."""
    return "".join(char if char in _S3_KEEP else "_" for char in _decomposed(name))


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def received_name(name: str, prefix: str | None) -> str:
    """``NamespacingMapper.transformStreamName``: raw ``prefix + name``; a blank prefix is no prefix."""
    return name if _blank(prefix) else f"{prefix}{name}"


def received_namespace(namespace: str | None, definition: str | None, namespace_format: str | None) -> str | None:
    """``NamespacingMapper.transformNamespace``: ``destination`` → none; ``customformat`` → the format with
    ``${SOURCE_NAMESPACE}`` filled in (none when blank); ``source`` or no definition → the source namespace."""
    if definition == "destination":
        return None
    if definition in ("customformat", "custom_format"):
        if namespace_format is None or _blank(namespace_format):
            return None
        filled = namespace_format.replace("${SOURCE_NAMESPACE}", "" if _blank(namespace) else str(namespace))
        return None if _blank(filled) else filled
    return namespace


@dataclass(frozen=True)
class StreamNames:
    """One configured stream as the source names it and as destination-s3 receives and files it."""

    name: str
    namespace: str | None
    destination_name: str
    destination_namespace: str | None
    sync_mode: str = "full_refresh"

    @property
    def folder(self) -> str:
        """The folder under ``airbyte/<source>/`` (the project's path format has no namespace folder)."""
        return s3_folder(self.destination_name)
