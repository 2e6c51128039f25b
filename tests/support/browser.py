"""Headless Chromium (Debian's ``chromium``) rendering a page the way a user's browser does, for assertions on
what the page shows. The Prefect UI is a single-page app: ``--dump-dom`` alone prints an empty shell, so pages
render under ``--virtual-time-budget`` (the page's timers run ahead until the budget is spent or the page is
idle, while its API requests are real), and a page whose data is not there yet is rendered again.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "chromium"
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
_ANCHOR = re.compile(r"<a\b[^>]*?\bhref=\"(?P<href>[^\"]*)\"[^>]*>(?P<text>.*?)</a>", re.S)


def chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return shutil.which(CHROMIUM)


@dataclass(frozen=True)
class Page:
    """A rendered page: its DOM, and the text a user reads."""

    url: str
    dom: str

    @property
    def text(self) -> str:
        body = re.sub(r"<(script|style)\b.*?</\1>", " ", self.dom, flags=re.S)
        return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))).strip()

    def links(self) -> list[tuple[str, str]]:
        """Every link of the page: (its target as written, its text)."""
        found = []
        for match in _ANCHOR.finditer(self.dom):
            text = html.unescape(re.sub(r"<[^>]+>", "", match["text"])).strip()
            found.append((html.unescape(match["href"]), text))
        return found


def _run(url: str, budget_ms: int, extra: list[str]) -> subprocess.CompletedProcess[str]:
    exe = chromium()
    assert exe is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [exe, *_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url],
            capture_output=True,
            text=True,
            timeout=180,
        )


def render(url: str, must_show: list[str], budget_ms: int = 15000, attempts: int = 4) -> Page:
    """The page at ``url`` once its text shows every string of ``must_show`` (rendered again, with a longer
    budget, while it does not); the last rendering is returned either way, for the assertion to name what is
    missing."""
    page = Page(url, "")
    for attempt in range(attempts):
        done = _run(url, budget_ms * (attempt + 1), ["--dump-dom"])
        page = Page(url, done.stdout)
        if all(s in page.text for s in must_show):
            break
    return page


def screenshot(url: str, path: Path, width: int = 1600, height: int = 1000, budget_ms: int = 20000) -> None:
    """A PNG of the page as a ``width`` x ``height`` window shows it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, budget_ms, [f"--window-size={width},{height}", f"--screenshot={path}"])
