"""The bronze flows: ``bronze_ingest`` and ``bronze_revalidate`` (in ``flow``), run by ``python -m flows.bronze``.

Deployments name ``flows.bronze.flow.bronze_ingest``; those registered by earlier versions name
``flows.bronze.bronze_ingest``, which still resolves, lazily (PEP 562): the command line (``__main__``) must
answer ``--help``, dry runs and bad input without importing Prefect (about a second)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("bronze_ingest", "bronze_revalidate"):
        from flows.bronze import flow

        return getattr(flow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
