"""One exception hierarchy for the whole core, so callers map errors to exit codes and retries in one place.

Exit codes: ``ConfigError`` is bad input the user must fix (exit 2, nothing written); every other failure may
pass on a retry or a later run (exit 1). Retries: an error says whether waiting can heal it (``retryable``);
``is_transient`` is the one predicate the Prefect tasks retry on.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class IngestError(Exception):
    """Base class of every error this package raises on purpose."""

    retryable = False


class ConfigError(IngestError):
    """Bad input: catalog, names, URIs or connector config. Nothing has been written when this is raised."""


class ConnectorError(IngestError):
    """The connector failed (TRACE error, non-zero exit, broken output); carries the connector's own message."""


class ConnectorInstallError(ConnectorError):
    """The connector package could not be installed into its virtualenv (the package index may be unreachable)."""

    retryable = True


class ConfigRejected(ConfigError, ConnectorError):
    """The connector's own ``check`` rejected the config (bad input, exit 2), with the connector's reason."""


class ImagePullError(ConnectorInstallError):
    """A connector image could not be pulled or inspected (the registry or the Docker API may be unreachable)."""


class StorageError(IngestError):
    """A read or write against the lake failed (unreachable, timed out, refused)."""

    retryable = True


class DocumentError(StorageError):
    """A document in the lake (manifest, state, ledger, ...) exists but cannot be read as what it should be."""

    retryable = False


class ValidationFailed(IngestError):
    """A bronze batch failed a check; the message names the stream, the check and the file."""


class CommitConflict(IngestError):
    """A Delta commit lost a race with another writer of the same table: re-reading the table and trying
    again either applies the batch on top or finds it already applied."""

    retryable = True


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same work later can succeed: what the error says of itself, and the network
    errors of the standard library (a dropped connection, a timeout)."""
    if isinstance(error, IngestError):
        return error.retryable
    return isinstance(error, ConnectionError | TimeoutError)


def one_line(message: str) -> str:
    """A multi-line message (delta-rs and object_store nest their causes on indented lines, with colour codes and
    arrows) as one line: the causes joined by ``: ``."""
    lines = (line.strip().lstrip("↳").strip() for line in _ANSI.sub("", message).splitlines())
    return ": ".join(line for line in lines if line)
