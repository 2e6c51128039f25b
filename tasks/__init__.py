"""Thin Prefect wrappers around the core: task names, retries for transient errors only, logging, events,
and secrets from Prefect blocks. No decision of their own.

- ``retrying``  the one retry policy (``lakehouse_ingest.errors.is_transient``).
- ``bronze``    embedded planning and sync, validation, hand-off, connector state.
- ``airbyte``   Airbyte-server sources: connection lookup, trigger-and-await, the job ledger, job logs.
- ``silver``    pending manifests and the merge of one batch.

Storage objects and clients never cross task boundaries (Prefect would try to hash them): tasks take URIs
and build what they need. Every task uses ``NO_CACHE``: all of them have side effects.
"""
