"""How the fake Airbyte's list routes read their filters and page their answers.

The Config API pages with a ``pagination`` object (``rowOffset``, ``pageSize``) in the request body; the public
API with ``limit`` / ``offset`` query parameters and answers ``next`` / ``previous`` links that repeat the query.
Both filter on ISO-8601 time bounds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode


def row_page(items: list[Any], pagination: dict[str, Any] | None) -> list[Any]:
    """The Config API's Pagination: ``rowOffset`` and an optional ``pageSize``."""
    pagination = pagination or {}
    offset = int(pagination.get("rowOffset") or 0)
    size = pagination.get("pageSize")
    return items[offset : offset + int(size)] if size is not None else items[offset:]


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def within(value: float, start: float | None, end: float | None) -> bool:
    return (start is None or value >= start) and (end is None or value <= end)


def first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def multi(query: dict[str, list[str]], name: str) -> list[str]:
    """A list parameter, given repeated or comma-separated."""
    return [part for value in query.get(name, []) for part in value.split(",") if part]


def limit_offset(query: dict[str, list[str]]) -> tuple[int, int]:
    """The public API's ``limit`` (default 20) and ``offset`` (default 0)."""
    limit = int_or_none(first(query, "limit"))
    offset = int_or_none(first(query, "offset"))
    return (20 if limit is None else limit), (0 if offset is None else offset)


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def paged(
    url: str, query: dict[str, list[str]], page: list[Any], total: int, limit: int, offset: int
) -> dict[str, Any]:
    """A public API list body: ``data``, and links to the next and previous pages at ``url``."""
    body: dict[str, Any] = {"data": page}
    base = {k: v for k, v in query.items() if k not in {"limit", "offset"}}

    def link(new_offset: int) -> str:
        params = [(k, v) for k, values in base.items() for v in values]
        params += [("limit", str(limit)), ("offset", str(new_offset))]
        return f"{url}?{urlencode(params)}"

    if offset + limit < total:
        body["next"] = link(offset + limit)
    if offset > 0:
        body["previous"] = link(max(0, offset - limit))
    return body
