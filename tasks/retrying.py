"""The one retry policy of every task: retry, with backoff, only what can heal by itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from lakehouse_ingest.errors import is_transient

P = ParamSpec("P")
R = TypeVar("R")


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: the task's error is transient (``lakehouse_ingest.errors.is_transient``:
    storage and network hiccups, package-index hiccups while installing, Airbyte 5xx/429 after the client's
    own retries, a Delta commit that lost a race to another writer)."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


def transient_retrying_task(name: str, task_run_name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A side-effecting task that retries (with backoff) only on transient errors."""

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return task(
            name=name,
            task_run_name=task_run_name,
            retries=2,
            retry_delay_seconds=[5.0, 20.0],
            retry_condition_fn=retry_transient,
            cache_policy=NO_CACHE,
        )(fn)

    return decorate
