"""What a provisioning plan is: per catalog source, the change to each Airbyte object and what applying needs.

Plain records, filled by :class:`~lakehouse_ingest.provisioning.apply.Provisioner` while it reads the server,
read by the request bodies (``desired``), the comparisons (``diff``) and the output (``render``). A
``ProvisionPlan`` plans one source's Airbyte objects; the embedded engine's ``EmbeddedPlan`` is unrelated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lakehouse_ingest.sources.airbyte.provisioning_models import DiscoveredCatalog, StreamSyncConfig

Action = Literal["create", "update", "unchanged"]


@dataclass(frozen=True)
class FieldChange:
    """One changed field, with values rendered for people (secrets as ``***``)."""

    path: str
    before: str
    after: str


@dataclass
class Change:
    """What happens to one Airbyte object: created, updated (which fields) or left unchanged."""

    kind: Literal["source", "destination", "connection"]
    name: str
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    object_id: str | None = None


@dataclass
class ProvisionPlan:
    """Everything planned for one catalog source (``changes`` in the order they apply)."""

    source: str
    workspace_id: str
    changes: list[Change] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # values never to print (see ``scrub``)
    # what applying needs
    source_id: str | None = None
    source_name: str | None = None
    source_definition_id: str | None = None
    source_config: dict[str, Any] | None = None
    destination_id: str | None = None
    destination_name: str = ""
    destination_definition_id: str = ""
    destination_config: dict[str, Any] = field(default_factory=dict)
    connection_id: str | None = None
    connection_name: str | None = None
    streams: dict[str, StreamSyncConfig] = field(default_factory=dict)
    catalog: DiscoveredCatalog = field(default_factory=lambda: DiscoveredCatalog(()))

    def change(self, kind: str) -> Change | None:
        """The change planned for the ``kind`` object, if any."""
        return next((c for c in self.changes if c.kind == kind), None)

    @property
    def writes(self) -> int:
        """How many objects this plan creates or updates."""
        return sum(1 for c in self.changes if c.action != "unchanged")
