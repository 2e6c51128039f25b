"""The YAML catalog: which sources exist, how they sync, their checks and deployments. Validated when
loaded, so bad input fails before anything is written.

- ``sources``      the catalog document: sources, connectors, streams, checks, Airbyte provisioning.
- ``deployments``  schedules, triggers, work pools and groups (what ``deployments/`` turns into Prefect
                   deployments).

May be imported by every layer; imports only ``lake.names`` and ``errors``.
"""
