"""The outcome of one check, shared by the built-in checks and the declarative rules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``file`` names the object at fault when there is one."""

    name: str
    passed: bool
    detail: str
    file: str | None = None


def short_error(exc: BaseException) -> str:
    """An error as a check's detail quotes it: its first line, at most 300 characters (or its type when empty)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
