"""The embedded engine: one sync of a real Airbyte source connector into bronze, no Airbyte platform.

Read in the order a sync runs: ``connector`` (the protocol commands spec/check/discover/read, run locally or in a
container) with ``install`` (a PyPI package into its own virtualenv), ``docker`` (an image, through the Docker
API) and ``manifest`` (a declarative manifest, checked by its runner's CDK through ``manifest_check``)
→ ``plan`` (everything checkable before a write: the connector runnable, config against the spec, check,
discover, streams) → ``sync`` (RECORD lines → ``records`` → Parquet parts per stream; STATE kept) → ``state``
(committed after the batches are handed off).
"""
