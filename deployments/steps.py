"""The deployments' one pull step: the flows' code is the project installed where the worker runs.

A deployment without pull steps makes Prefect's process worker "download flow code from storage" (it copies the
run's own empty working directory into itself and says so in every run's logs), although module entrypoints
(``flows.bronze.flow.bronze_ingest``) import the installed package and nothing is pulled. Declaring this step
instead says what happens ("Executing deployment step: use_installed_project") and copies nothing.

Kept free of Prefect imports: the worker imports it before the flow run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STEP = "deployments.steps.use_installed_project"


def use_installed_project(**_: Any) -> dict[str, str]:
    """Prefect pull step: nothing to pull; the flow code is the installed ``airbyte-lakehouse`` package."""
    return {}


class InstalledProject:
    """A ``RunnerStorage`` for registered deployments whose code is installed on the worker: its pull step is
    :func:`use_installed_project`. (``serve`` runs in the registering process and needs none.)"""

    def set_base_path(self, path: Path) -> None:
        """Nothing is pulled, so there is no base path to set."""

    @property
    def pull_interval(self) -> int | None:
        """Never pulled again."""
        return None

    @property
    def destination(self) -> Path:
        """Where the code is: the installed package's folder."""
        return Path(__file__).resolve().parent.parent

    async def pull_code(self) -> None:
        """Nothing to pull."""

    def to_pull_step(self) -> dict[str, Any]:
        """The deployment's pull step."""
        return {STEP: {}}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstalledProject)

    def __hash__(self) -> int:
        return hash(STEP)
