"""What a route handler of the fake Airbyte receives and returns, and how it becomes a Starlette route.

Handlers are plain functions of a :class:`Call` (the parsed body, the query, the path parameters) returning a
:class:`Reply` (status and body still as Python data), so the gateway (:mod:`support.fake_airbyte.gateway`) can
tamper with the body, validate it against the spec and record it before it is serialised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from support.fake_airbyte.gateway import Exchange


@dataclass
class Call:
    """A request as a handler sees it: the JSON (or form) body as a dict ({} without one), query and path params."""

    body: dict[str, Any]
    query: dict[str, list[str]]
    params: dict[str, str]


@dataclass
class Reply:
    """A response before it is sent; ``validate=False`` for injected faults and crashes (not checked)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"  # None: no Content-Type (an empty body)
    validate: bool = True


Handler = Callable[[Call], Reply | Awaitable[Reply]]


def route(method: str, path: str, handler: Handler) -> Route:
    """A Starlette route serving ``handler`` for one method.

    HEAD is not implied by GET: like any other method the route does not serve, it gets 405.
    """

    async def endpoint(request: Request) -> Response:
        exchange: Exchange = request.state.exchange
        return await exchange.answer(handler, dict(request.path_params))

    served = Route(path, endpoint, methods=[method])
    assert served.methods is not None
    served.methods.discard("HEAD")
    return served
