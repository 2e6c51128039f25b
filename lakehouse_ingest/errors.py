"""One exception hierarchy for the whole core, so callers map errors to exit codes in one place."""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(IngestError):
    """Bad input: catalog, names, URIs or connector config. Nothing has been written when this is raised."""


class ConnectorError(IngestError):
    """The connector failed (TRACE error, non-zero exit, broken output); carries the connector's own message."""


class ConnectorInstallError(ConnectorError):
    """The connector package could not be installed into its virtualenv."""


class StorageError(IngestError):
    """A read or write against the lake failed."""


class ValidationFailed(IngestError):
    """A bronze batch failed a check; the message names the stream, the check and the file."""


class DocumentError(StorageError):
    """A document in the lake (manifest, state, ledger, ...) exists but cannot be read as what it should be."""
