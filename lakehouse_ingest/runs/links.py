"""Where a lake location can be opened from the Prefect UI: links that work, or plain text.

The UI renders artifacts as markdown in the browser, so a link's target must be an absolute URL the browser
can open. A local path is not one (it would resolve against the Prefect server, "Page not found") and
``s3://`` opens nothing, so:

- an ``s3://bucket/key`` location links to the S3 console when ``LAKE_CONSOLE_URL`` names one (the MinIO
  console's object browser: ``<console>/browser/<bucket>/<url-encoded key>``, a folder's key ending in ``/``);
- everything else (a local directory, ``s3://`` without a console) is plain text, ready to copy.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LinkSettings(BaseSettings):
    """``LAKE_CONSOLE_URL``: the S3 console serving the lake's buckets (e.g. ``http://localhost:9001``)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    console_url: str | None = Field(None, validation_alias=AliasChoices("LAKE_CONSOLE_URL", "console_url"))


def console_url() -> str | None:
    """The configured console's root URL (no trailing slash), or None."""
    url = (LinkSettings().console_url or "").strip().rstrip("/")
    return url if url.startswith(("http://", "https://")) else None


def location_url(location: str, console: str | None, folder: bool = False) -> str | None:
    """The absolute URL that opens ``location`` in the console, or None when there is none to give.

    ``folder``: the location is a prefix (a stream's folder, a Delta table): the console lists it.
    """
    if console is None or not location.startswith("s3://"):
        return None
    bucket, _, key = location[len("s3://") :].partition("/")
    if not bucket:
        return None
    if folder and key and not key.endswith("/"):
        key += "/"
    return f"{console}/browser/{quote(bucket, safe='')}/{quote(key, safe='')}"


def location_markdown(location: str, console: str | None, folder: bool = False) -> str:
    """``location`` as markdown: a link to the console when there is one (its text the location itself; Prefect's
    renderer shows code inside link text as raw backticks), else inline code (plain text)."""
    if not location:
        return ""
    url = location_url(location, console, folder)
    if url is None:
        return f"`{location}`"
    text = re.sub(r"([\\`*_\[\]<>])", r"\\\1", location)
    return f"[{text}]({url})"
