"""The silver flow: ``silver_merge`` (in ``flow``), run by ``python -m flows.silver``.

Deployments name ``flows.silver.flow.silver_merge``; ``flows.silver.silver_merge`` (what earlier versions
registered) still resolves, lazily, as in ``flows.bronze``: the command line must not import Prefect early.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "silver_merge":
        from flows.silver import flow

        return flow.silver_merge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
