"""The one way a request reaches the Airbyte server: send it, turn every failure into our errors, retry.

Failures become errors in exactly one place (``_send_once``): a timeout is ``AirbyteTimeoutError``, a
connection problem, a 5xx or a 429 ``AirbyteTransientError`` (with the server's Retry-After), 401/403
``AirbyteAuthError``, 409 ``AirbyteConflictError``, any other 4xx ``AirbyteRequestError``. An answer that cannot
be used is an ``AirbyteResponseError`` naming the endpoint and the field: an empty body (a 204 or an empty 200, which
no Airbyte server sends on these endpoints but a proxy in between can) where one is needed, or a payload the
caller's ``parse`` cannot read (never a bare ``KeyError``). Transient errors
are retried up to ``max_retries`` times with capped exponential backoff and jitter, or after the server's
Retry-After (at most 60 s); a call that must not be repeated blindly (the sync trigger, creates) passes
``retry=False``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from lakehouse_ingest.sources.airbyte.errors import (
    AirbyteAuthError,
    AirbyteConflictError,
    AirbyteError,
    AirbyteRequestError,
    AirbyteResponseError,
    AirbyteTimeoutError,
    AirbyteTransientError,
    ConnectionInactiveError,
)

if TYPE_CHECKING:
    from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings

CONNECT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 10.0
MAX_RETRY_AFTER_SECONDS = 60.0
T = TypeVar("T")


class Http:
    """One ``httpx.Client`` per server (auth, timeouts, connection pool) behind ``request``."""

    def __init__(
        self,
        settings: AirbyteSettings,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests_sent = 0
        self._max_retries = settings.max_retries
        self._backoff_seconds = settings.backoff_seconds
        self._sleep = sleep
        self._client = httpx.Client(
            auth=settings.auth(),
            timeout=httpx.Timeout(settings.request_timeout, connect=CONNECT_SECONDS),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "airbyte-lakehouse"},
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    @overload
    def request(
        self,
        method: str,
        url: str,
        *,
        parse: Callable[[Any], T],
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        retry: bool = True,
        connection_id: str | None = None,
        job_id: int | None = None,
        empty_ok: bool = False,
    ) -> T: ...

    @overload
    def request(
        self,
        method: str,
        url: str,
        *,
        parse: None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        retry: bool = True,
        connection_id: str | None = None,
        job_id: int | None = None,
        empty_ok: bool = False,
    ) -> Any: ...

    def request(
        self,
        method: str,
        url: str,
        *,
        parse: Callable[[Any], T] | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        retry: bool = True,
        connection_id: str | None = None,
        job_id: int | None = None,
        empty_ok: bool = False,
    ) -> T | Any:
        """The answer, through ``parse`` when given (else its JSON body); transient failures retried when ``retry``.

        ``timeout`` (seconds to wait for the answer) replaces the settings' request timeout for slow calls;
        ``connection_id`` and ``job_id`` are context for the error messages. ``empty_ok``: an empty body is an
        answer (None), not an error.
        """
        retrying = Retrying(
            stop=stop_after_attempt(1 + (self._max_retries if retry else 0)),
            retry=retry_if_exception_type(AirbyteTransientError),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        context: dict[str, Any] = {"method": method, "url": url, "connection_id": connection_id, "job_id": job_id}
        kwargs: dict[str, Any] = {"json": json, "params": params}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=CONNECT_SECONDS)
        body = retrying(self._send_once, kwargs, context)
        if body is None:
            if empty_ok:
                return None
            raise AirbyteResponseError("the Airbyte server answered with an empty body", **context)
        if parse is None:
            return body
        try:
            return parse(body)
        except KeyError as exc:
            raise AirbyteResponseError(f"the answer lacks the field {exc.args[0]!r}", **context) from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise AirbyteResponseError(f"the answer cannot be read ({exc})", **context) from exc

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else backoff with jitter; capped."""
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, AirbyteTransientError) else None
        if retry_after is None:
            base = self._backoff_seconds * (2 ** (state.attempt_number - 1))
            retry_after = min(base, MAX_BACKOFF_SECONDS) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        return min(retry_after, MAX_RETRY_AFTER_SECONDS)

    def _send_once(self, kwargs: dict[str, Any], context: dict[str, Any]) -> Any:
        """One exchange; the only place failures become errors."""
        self.requests_sent += 1
        try:
            response = self._client.request(context["method"], context["url"], **kwargs)
        except httpx.TimeoutException as exc:
            raise AirbyteTimeoutError(f"no answer in time ({type(exc).__name__})", **context) from exc
        except httpx.TransportError as exc:
            raise AirbyteTransientError(f"cannot reach the Airbyte server ({type(exc).__name__})", **context) from exc
        if response.is_success:
            if not response.content.strip():
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise AirbyteResponseError(
                    "the answer is not JSON", http_status=response.status_code, **context
                ) from exc
        raise _error_for(response, context)


def _error_for(response: httpx.Response, context: dict[str, Any]) -> AirbyteError:
    status = response.status_code
    body = response.text
    context = {**context, "http_status": status, "body": body}
    if status in (401, 403):
        return AirbyteAuthError("the Airbyte server refused the credentials", **context)
    if status == 409:
        return AirbyteConflictError("the Airbyte server reported a conflict", **context)
    if status == 429 or status >= 500:
        if "can only sync an active connection" in body.lower():
            return ConnectionInactiveError("the connection is not active", **context)
        return AirbyteTransientError(
            f"the Airbyte server answered {status}", retry_after=_retry_after(response), **context
        )
    return AirbyteRequestError(f"the Airbyte server rejected the request ({status})", **context)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
