"""Who may call the fake Airbyte: Basic, static bearer or client-credentials auth, the tokens it issues and when
they expire, and the routes anyone may call (health and both token endpoints).

With ``auth="basic"`` a 401 comes from the nginx proxy of docker-compose installs (HTML, ``WWW-Authenticate:
Basic``); otherwise from Airbyte (Micronaut's body on the Config API, a problem on the public API). Issued tokens
are HS256 JWTs signed with a key of this fake; :meth:`Auth.expire_tokens` invalidates all of them at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
import uuid
from typing import Any

from starlette.routing import Route

from support.fake_airbyte.errors import micronaut, problem
from support.fake_airbyte.routing import Call, Reply, route
from support.fake_airbyte.state import FakeOptions
from support.openapi_check import CONFIG_PREFIX, PUBLIC_PREFIX

ANONYMOUS = frozenset(
    {
        f"{CONFIG_PREFIX}/health",
        f"{PUBLIC_PREFIX}/health",
        f"{CONFIG_PREFIX}/applications/token",
        f"{PUBLIC_PREFIX}/applications/token",
    }
)


class Auth:
    """Checks credentials as ``options.auth`` says, and issues and expires client-credentials tokens."""

    def __init__(self, options: FakeOptions, lock: threading.RLock) -> None:
        self.options = options
        self.lock = lock
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.jwt_key = secrets.token_bytes(32)

    def authorized(self, headers: dict[str, str]) -> bool:
        """Whether the request's ``authorization`` header (headers lower-cased) lets it in."""
        options = self.options
        if options.auth == "none":
            return True
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        value = value.strip()
        if options.auth == "basic":
            if scheme.lower() != "basic":
                return False
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, options.username) and hmac.compare_digest(password, options.password)
        if scheme.lower() != "bearer" or not value:
            return False
        if options.auth == "bearer":
            return hmac.compare_digest(value, options.token)
        with self.lock:
            expiry = self.tokens.get(value)
        return expiry is not None and time.time() < expiry

    def unauthorized(self, api: str, path: str) -> Reply:
        """The 401 a request without valid credentials gets, from whoever answers it in this setup."""
        if self.options.auth == "basic":  # the nginx proxy of docker-compose installs answers, not Airbyte
            html = "<html><head><title>401 Authorization Required</title></head><body>401</body></html>"
            return Reply(401, html, {"WWW-Authenticate": 'Basic realm="Airbyte"'}, content_type="text/html")
        reply = problem("invalid-api-key") if api == "public" else micronaut(401, "Unauthorized", "Unauthorized", path)
        reply.headers["WWW-Authenticate"] = 'Bearer realm="Airbyte"'
        return reply

    def expire_tokens(self) -> None:
        """Every token issued so far is invalid from now on."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def issue_token(self, client_id: Any, client_secret: Any) -> str | None:
        """A signed JWT valid for ``token_ttl_seconds``, or None for wrong client credentials."""
        options = self.options
        if not (
            isinstance(client_id, str)
            and isinstance(client_secret, str)
            and hmac.compare_digest(client_id, options.client_id)
            and hmac.compare_digest(client_secret, options.client_secret)
        ):
            return None
        now = time.time()
        expiry = now + options.token_ttl_seconds
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "iss": "fake-airbyte",
            "sub": client_id,
            "iat": int(now),
            "exp": math.ceil(expiry),
            "jti": str(uuid.uuid4()),
        }
        payload = _b64url(json.dumps(claims).encode())
        signature = _b64url(hmac.new(self.jwt_key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self.lock:
            self.tokens[token] = expiry
        return token

    # -- the anonymous routes ----------------------------------------------------------------------------------
    def config_routes(self) -> list[Route]:
        return [
            route("GET", "/health", lambda call: Reply(200, {"available": True})),
            route("POST", "/applications/token", self._config_token),
        ]

    def public_routes(self) -> list[Route]:
        return [
            route("GET", "/health", lambda call: Reply(200, "Successful operation", content_type="text/plain")),
            route("POST", "/applications/token", self._public_token),
        ]

    def _config_token(self, call: Call) -> Reply:
        token = self.issue_token(call.body.get("client_id"), call.body.get("client_secret"))
        if token is None:
            return micronaut(400, "Bad Request", "Invalid client id or token", f"{CONFIG_PREFIX}/applications/token")
        return self._odd_status(token) or Reply(200, {"access_token": token})

    def _public_token(self, call: Call) -> Reply:
        token = self.issue_token(call.body.get("client_id"), call.body.get("client_secret"))
        if token is None:
            return micronaut(400, "Bad Request", "Invalid client id or token", f"{PUBLIC_PREFIX}/applications/token")
        expires_in = self.options.token_expires_in
        if expires_in is None:
            expires_in = math.ceil(self.options.token_ttl_seconds)
        return self._odd_status(token) or Reply(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        )

    def _odd_status(self, token: str) -> Reply | None:
        """With ``token_status`` other than 200: that status and ``{access_token}`` only.

        No Airbyte version answers a token request with anything but 200 (``ApplicationsController.kt`` in both
        packages, v0.64.0 … HEAD; both specs list 200 only: research rule 6). The 201 is what dagster-airbyte's
        test suite mocks (``dagster_airbyte_tests/beta/conftest.py``) and what a gateway in front may answer, so
        it is sent unvalidated and recorded as injected.
        """
        if self.options.token_status == 200:
            return None
        return Reply(self.options.token_status, {"access_token": token}, validate=False)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
