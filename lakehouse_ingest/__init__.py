"""Plain-Python core of the Airbyte → lakehouse ingestion. No Prefect import anywhere below this package.

The folders follow the data path, each over the ones below it:

- ``sources/``      where rows come from: ``embedded/`` runs a real Airbyte connector through the Airbyte
                    protocol; ``airbyte/`` talks to an Airbyte server (HTTP only); ``platform/`` finds what an
                    Airbyte job wrote into bronze and which jobs are still to hand off.
- ``bronze/``       what landed: the stream batch contract, Parquet parts, the checks and rules, reports,
                    quarantine and the manifest that hands a batch to silver.
- ``silver/``       one Delta Lake table per stream, merged from manifests exactly once.
- ``provisioning/`` the Airbyte destination and connections a catalog needs (plan, then apply).
- ``runs/``         decisions a run makes (statuses, what to hand off, what to skip), as pure functions
                    the Prefect flows compose.
- ``lake/``         under everything: storage (a directory or S3), every key, every stored document.
- ``catalog/``      under everything: the YAML catalog of sources and deployments, validated up front.

``errors`` (one exception hierarchy) and ``settings`` (environment) serve every layer. A package imports
only from its own layer or the layers below it; ``lake`` and ``catalog`` import nothing above them.
"""
