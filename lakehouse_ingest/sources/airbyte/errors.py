"""Errors from the Airbyte API, with context on every one and never a secret.

Each error knows whether retrying can help (``retryable``): 5xx, 429 and connection errors can; other 4xx,
a failed job or an inactive connection cannot. Prefect tasks decide retries from that flag. The requests
themselves become errors in ``http``; ``connection_not_found`` turns a 404/422 on a connection read into
``ConnectionNotFoundError`` (bad input) for both API families.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from lakehouse_ingest.errors import ConfigError, IngestError

_SECRET_FIELDS = re.compile(
    r'("?(?:access_token|client_secret|password|token|secret)"?\s*[:=]\s*)("[^"]*"|[^\s,&}]+)', re.IGNORECASE
)
EXCERPT_CHARS = 300


def mask_url(url: str) -> str:
    """The URL without user info or query string (either may hold credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def mask_text(text: str) -> str:
    """``text`` with the values of secret-looking fields replaced, cut to a short excerpt."""
    masked = _SECRET_FIELDS.sub(lambda m: m.group(1) + '"***"', text)
    return masked if len(masked) <= EXCERPT_CHARS else masked[:EXCERPT_CHARS] + "..."


class AirbyteError(IngestError):
    """Base of every Airbyte error; ``str()`` gives the message and the context that is known."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        connection_id: str | None = None,
        job_id: int | None = None,
        status: str | None = None,
        http_status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        body: str | None = None,
    ) -> None:
        self.message = message
        self.connection_id = connection_id
        self.job_id = job_id
        self.status = status
        self.http_status = http_status
        self.method = method
        self.url = mask_url(url) if url else None
        self.body = mask_text(body) if body else None
        self._full_body = body or ""  # for classification only; never printed
        super().__init__(str(self))

    def __str__(self) -> str:
        context = [
            f"connection {self.connection_id}" if self.connection_id else "",
            f"job {self.job_id}" if self.job_id is not None else "",
            f"status {self.status}" if self.status else "",
            f"HTTP {self.http_status}" if self.http_status else "",
            f"{self.method} {self.url}" if self.method and self.url else "",
            f"body: {self.body}" if self.body else "",
        ]
        details = "; ".join(c for c in context if c)
        return f"{self.message} ({details})" if details else self.message


class AirbyteTransientError(AirbyteError):
    """5xx, 429 or a connection problem: retrying later can help. ``retry_after`` in seconds if given."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **context: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **context)  # type: ignore[arg-type]


class AirbyteTimeoutError(AirbyteTransientError):
    """A request got no answer in time (for the sync trigger this does NOT mean the sync failed)."""


class AirbyteAuthError(AirbyteError):
    """Credentials were refused (401/403, or a token exchange failed)."""


class AirbyteResponseError(AirbyteError):
    """An answer this client cannot use (empty, not JSON, a required field missing); names the endpoint."""


class AirbyteRequestError(AirbyteError):
    """Another 4xx: the request itself is wrong; retrying cannot help."""


class AirbyteConflictError(AirbyteError):
    """409: a sync is already running for the connection, or the job is not in a state that allows this."""

    @property
    def sync_already_running(self) -> bool:
        """True when the server said a sync is already running (every known body shape)."""
        return "a sync is already running" in self._full_body.lower()


class ConnectionNotFoundError(AirbyteError, ConfigError):
    """The catalog names a connection the server does not know: bad input."""


class ConnectionInactiveError(AirbyteError):
    """The connection exists but is not active, so Airbyte refuses to sync it."""


class ConnectionBusyError(AirbyteError):
    """A reset or clear job is running on the connection: no sync can start or be attached to until it ends."""


class AirbyteJobFailedError(AirbyteError):
    """The job ended failed or cancelled; the message carries the last attempt's failure summary."""


class AirbyteJobTimeoutError(AirbyteError):
    """The job did not finish before the deadline (it has been cancelled)."""


@contextmanager
def connection_not_found(connection_id: str) -> Iterator[None]:
    """A 404/422 on a connection read becomes ConnectionNotFoundError (other errors pass through)."""
    try:
        yield
    except AirbyteRequestError as exc:
        if exc.http_status in (404, 422):
            raise ConnectionNotFoundError(
                "no such connection on the Airbyte server", connection_id=connection_id, http_status=exc.http_status
            ) from exc
        raise
