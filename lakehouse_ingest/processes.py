"""Whether a process still runs: how leftovers of a killed process (staging folders, connector config folders,
connector containers, sync records) are told apart from those of a process that is still working."""

from __future__ import annotations

import os

__all__ = ["process_exists"]


def process_exists(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (another user's counts: signal 0 is refused, not lost)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
