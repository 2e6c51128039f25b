"""What every request to the fake Airbyte goes through around its route, in order:

1. it is parsed (JSON, or a form for the token endpoints) and recorded as a :class:`RecordedRequest`;
2. it is checked against the OpenAPI spec (:mod:`support.openapi_check`); problems land in ``spec_violations``;
3. a fault planned with ``fail_next`` answers it, before auth and before any state changes (not validated);
4. without valid credentials it gets a 401 (health and the token endpoints are anonymous);
5. Starlette routes it (trailing slashes stripped): an unknown path gets Micronaut's 404, a known path with the
   wrong method its 405; a request that broke the spec gets 422 (Config API) or 400 (public API); else the
   route's handler answers, and a crash of the fake answers 500 and is listed in ``spec_violations``;
6. a reply planned with ``empty_reply_next`` / ``fail_trigger_after_create`` replaces the handler's (which did run:
   a cancel still cancels, a trigger still created its job), as a proxy in between would (not validated);
7. a ``tamper_next`` mutation is applied, the reply is checked against the spec, recorded and sent.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from support.fake_airbyte.auth import ANONYMOUS, Auth
from support.fake_airbyte.errors import config_invalid, micronaut, problem
from support.fake_airbyte.routing import Call, Handler, Reply
from support.fake_airbyte.state import FakeOptions, FakeState, Fault, RecordedRequest
from support.openapi_check import CONFIG_PREFIX, PUBLIC_PREFIX


class Gateway:
    """Builds the Starlette app of the fake and opens an :class:`Exchange` for each request."""

    def __init__(self, state: FakeState, options: FakeOptions, auth: Auth) -> None:
        self.state = state
        self.options = options
        self.auth = auth

    def app(self, config_routes: Sequence[BaseRoute], public_routes: Sequence[BaseRoute]) -> Starlette:
        """The ASGI app: both APIs mounted at their prefixes, behind the admission middleware."""
        app = Starlette(
            routes=[Mount(CONFIG_PREFIX, routes=list(config_routes)), Mount(PUBLIC_PREFIX, routes=list(public_routes))],
            middleware=[Middleware(_Admission, gateway=self)],
            exception_handlers={404: self._not_found, 405: self._not_allowed},
        )
        app.router.redirect_slashes = False  # a bare "/api/v1" gets Micronaut's 404, not a 307 to "/api/v1/"
        return app

    async def open(self, request: Request) -> Exchange:
        """Read and parse the request, and start its record."""
        started = time.time()
        raw = await request.body()
        headers = {key.lower(): value for key, value in request.headers.items()}
        query = parse_qs(request.url.query, keep_blank_values=True)
        content_type = headers.get("content-type", "")
        body, body_error = _parse_body(raw, content_type)
        peer = (request.client.host, request.client.port) if request.client else None
        method, path = request.method.upper(), request.url.path
        record = RecordedRequest(method, path, query, headers, body, raw, started, client=peer)
        return Exchange(self, record, content_type, body_error)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        exchange: Exchange = request.state.exchange
        return exchange.finish(micronaut(404, "Not Found", "Page Not Found", exchange.path))

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        exchange: Exchange = request.state.exchange
        method, path = exchange.record.method, exchange.path
        return exchange.finish(
            micronaut(405, "Method Not Allowed", f"Method [{method}] not allowed for URI [{path}]", path)
        )


class _Admission:
    """Middleware: opens the request's exchange and answers it when it must not reach a route (steps 1-4)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - uvicorn runs without lifespan and websockets
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        exchange = await self.gateway.open(request)
        request.state.exchange = exchange
        try:
            early = exchange.admit()
        except Exception as exc:
            early = exchange.crashed(exc)
        if early is not None:
            await exchange.finish(early)(scope, receive, send)
            return
        scope["path"] = exchange.path
        await self.app(scope, receive, send)


class Exchange:
    """One request on its way through the fake: what the handler gets, what the spec check found, its record."""

    def __init__(self, gateway: Gateway, record: RecordedRequest, content_type: str, body_error: str | None) -> None:
        self.gateway = gateway
        self.record = record
        self.content_type = content_type
        self.body_error = body_error
        self.path = record.path.rstrip("/") or "/"
        public = self.path == PUBLIC_PREFIX or self.path.startswith(PUBLIC_PREFIX + "/")
        self.api = "public" if public else "config"
        self.problems: list[str] = []

    def admit(self) -> Reply | None:
        """Check the request against the spec; the reply of a planned fault, a 401 or a removed route, if any."""
        gateway, record, path = self.gateway, self.record, self.path
        state, method = gateway.state, record.method
        self.problems = gateway.options.checker.check_request(
            method,
            path,
            body=record.json if self.body_error is None else None,
            query=record.query,
            content_type=self.content_type or None,
        )
        if self.body_error is not None:
            self.problems.append(f"request body: {self.body_error}")
        if self.problems:
            with state.lock:
                state.spec_violations.extend(f"request {method} {path}: {p}" for p in self.problems)
        fault = state.take_fault(method, path)
        if fault is not None:
            return _injected(fault)
        if path not in ANONYMOUS and not gateway.auth.authorized(record.headers):
            return gateway.auth.unauthorized(self.api, path)
        if gateway.options.workspaces_list_removed and path == f"{CONFIG_PREFIX}/workspaces/list":
            return micronaut(404, "Not Found", "Page Not Found", path)
        return None

    async def answer(self, handler: Handler, params: dict[str, str]) -> Response:
        """The reply of the route's handler (or of the spec check, when the request broke the spec)."""
        if self.problems:
            if self.api == "config":
                return self.finish(config_invalid(self.problems))
            return self.finish(problem("bad-request", "; ".join(self.problems)[:1000]))
        body = self.record.json if isinstance(self.record.json, dict) else {}
        try:
            result = handler(Call(body, self.record.query, params))
            reply = await result if asyncio.iscoroutine(result) else result
        except Exception as exc:
            reply = self.crashed(exc)
        assert isinstance(reply, Reply)
        plan = self.gateway.state.take_after_plan(self.record.method, self.path, reply.status)
        if plan is not None:  # something in between answers instead, after the server did its work
            reply = Reply(plan.status, plan.body, content_type=plan.content_type, validate=False)
        return self.finish(reply)

    def crashed(self, exc: Exception) -> Reply:
        """A 500 for a bug in the fake, listed in ``errors`` and ``spec_violations`` so the test fails."""
        state, record = self.gateway.state, self.record
        message = f"fake Airbyte crashed on {record.method} {record.path}: {type(exc).__name__}: {exc}"
        state.errors.append(message + "\n" + traceback.format_exc())
        state.spec_violations.append(message)
        return Reply(500, {"message": message}, validate=False)

    def finish(self, reply: Reply) -> Response:
        """Tamper with the reply if planned, check it against the spec, record it and serialise it."""
        state, record = self.gateway.state, self.record
        tamper = state.take_tamper(record.method, self.path)
        if tamper is not None:
            reply.body = tamper.mutate(reply.body)
        if reply.validate:
            problems = self.gateway.options.checker.check_response(
                record.method, self.path, reply.status, reply.body, content_type=reply.content_type
            )
            if problems:
                with state.lock:
                    state.spec_violations.extend(f"response {record.method} {record.path}: {p}" for p in problems)
        if isinstance(reply.body, str):
            payload = reply.body.encode()
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
        record.ended = time.time()
        record.status = reply.status
        record.response_json = reply.body
        record.response_headers = dict(reply.headers)
        record.injected = not reply.validate
        with state.lock:
            state.requests.append(record)
        return Response(payload, reply.status, headers=reply.headers, media_type=reply.content_type)


def _injected(fault: Fault) -> Reply:
    headers = {}
    if fault.retry_after is not None:
        ra = fault.retry_after
        headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
    default = {"message": f"Injected failure: HTTP {fault.status}"}
    return Reply(fault.status, fault.body if fault.body is not None else default, headers, validate=False)


def _parse_body(raw: bytes, content_type: str) -> tuple[Any, str | None]:
    if not raw.strip():
        return None, None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            return {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}, None
        except UnicodeDecodeError as exc:
            return None, f"form body is not UTF-8: {exc}"
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return None, f"not JSON ({media or 'no content type'}): {exc}"
