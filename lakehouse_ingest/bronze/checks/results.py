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
