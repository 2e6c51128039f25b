"""Authentication for the Airbyte API, as httpx auth flows.

- none;
- HTTP basic (docker-compose installs ≤ 0.63: ``airbyte`` / ``password`` behind the nginx proxy);
- a static bearer token;
- client credentials (1.x with abctl, Cloud): exchanged at ``/api/v1/applications/token`` (answers only
  ``access_token``) or ``/api/public/v1/applications/token`` (adds ``expires_in``). Tokens are refreshed
  before they expire, judged by the earliest of ``expires_in``, the JWT's own ``exp`` and 180 s (what
  servers actually sign differs from what they announce), and once more on a 401.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Generator
from typing import Any

import httpx

from lakehouse_ingest.sources.airbyte.errors import AirbyteAuthError, AirbyteTransientError

DEFAULT_TOKEN_SECONDS = 180.0
REFRESH_MARGIN_SECONDS = 30.0


class BearerToken(httpx.Auth):
    """A fixed ``Authorization: Bearer`` token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ClientCredentials(httpx.Auth):
    """Exchange a client id and secret for short-lived tokens; refresh early and on a 401."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, client_secret: str) -> None:
        self.token_url = token_url
        self._body = {"client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"}
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()  # held across the token exchange: one exchange for all threads
        self.exchanges = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = yield from self._valid_token(stale=None)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: one fresh token, one more try
            token = yield from self._valid_token(stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _valid_token(self, stale: str | None) -> Generator[httpx.Request, httpx.Response, str]:
        """A usable token; exchanges once for all threads waiting (single flight), and replaces ``stale``."""
        with self._lock:
            if self._token is None or self._token == stale or time.monotonic() >= self._expires_at:
                yield from self._refresh()
            assert self._token is not None
            return self._token

    def _refresh(self) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield httpx.Request("POST", self.token_url, json=self._body)
        context: dict[str, Any] = {"http_status": response.status_code, "method": "POST", "url": self.token_url}
        if response.status_code == 429 or response.status_code >= 500:  # the server, not the credentials
            raise AirbyteTransientError("the token exchange failed", body=response.text, **context)
        if not response.is_success:  # any 2xx is an answer: servers say 200, some test doubles and proxies 201
            raise AirbyteAuthError("token exchange refused the client credentials", body=response.text, **context)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise AirbyteAuthError("token exchange answered without a JSON body", **context)
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise AirbyteAuthError("token exchange answered without access_token", method="POST", url=self.token_url)
        lifetime = min(_announced_seconds(payload), _jwt_seconds(token), DEFAULT_TOKEN_SECONDS)
        self._token = token  # the caller holds self._lock
        self._expires_at = time.monotonic() + max(lifetime - REFRESH_MARGIN_SECONDS, lifetime / 2)
        self.exchanges += 1


def _announced_seconds(payload: dict[str, Any]) -> float:
    value = payload.get("expires_in")
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_TOKEN_SECONDS


def _jwt_seconds(token: str) -> float:
    """Seconds until the JWT's ``exp`` claim, or the default when the token is not a readable JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return max(float(claims["exp"]) - time.time(), 1.0)
    except (IndexError, KeyError, TypeError, ValueError):
        return DEFAULT_TOKEN_SECONDS
