"""Bronze: what landed, proven before it moves on.

- ``batch``        the contract every source produces: one stream batch of one sync (``StreamBatch``).
- ``arrow_types``  the Parquet columns Airbyte's S3 destination writes (JSON schema → Arrow, Airbyte columns).
- ``parts``        bounded-memory Parquet part files, published atomically.
- ``checks/``      validation of a batch: built-in checks, the catalog's rules, the one-pass scan.
- ``quarantine``   reports of every batch, and the quarantine mark of a failed one.
- ``manifest``     the hand-off to silver: the manifest of a validated batch and its events.
- ``janitor``      what a killed embedded sync left (parts without a manifest, records of ended processes).

Imports ``lake`` and ``catalog`` only.
"""
