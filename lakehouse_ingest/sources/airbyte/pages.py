"""Paging through Airbyte lists, one helper per style; both yield page by page, so a caller that has found
what it wants stops before the next request.

- The public API (``GET``, ``limit`` / ``offset`` query parameters) answers ``{"data": [...], "next": url}``;
  the list ends where there is no ``next`` or a page is short.
- The Config API (``POST``, ``"pagination": {"pageSize", "rowOffset"}`` in the body) answers the items under
  a key of its own (``jobs``, ``workspaces``); the list ends at a short page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lakehouse_ingest.sources.airbyte.http import Http

PAGE_SIZE = 100


def public_pages(
    http: Http,
    url: str,
    params: dict[str, Any],
    page_size: int | None = None,
    connection_id: str | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of a public API list (``page_size`` items each; ``PAGE_SIZE`` by default)."""

    def page(size: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        query = {**params, "limit": size, "offset": offset}
        body = http.request("GET", url, params=query, connection_id=connection_id)
        return body.get("data") or [], bool(body.get("next"))

    return _offset_pages(page, page_size or PAGE_SIZE)


def config_pages(
    http: Http,
    url: str,
    request: dict[str, Any],
    key: str,
    page_size: int | None = None,
    connection_id: str | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of a Config API list: the items under ``key`` (``page_size`` each; ``PAGE_SIZE`` by default)."""

    def page(size: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        paged = {**request, "pagination": {"pageSize": size, "rowOffset": offset}}
        body = http.request("POST", url, json=paged, connection_id=connection_id)
        return body.get(key) or [], True

    return _offset_pages(page, page_size or PAGE_SIZE)


def _offset_pages(
    page: Callable[[int, int], tuple[list[dict[str, Any]], bool]], size: int
) -> Iterator[list[dict[str, Any]]]:
    """Fetch page after page (``page(size, offset)`` gives the items and whether the server says there are
    more) until a short page or the server's last one."""
    offset = 0
    while True:
        items, more = page(size, offset)
        yield items
        if not more or len(items) < size:
            return
        offset += size
