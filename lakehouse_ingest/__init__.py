"""Plain-Python core of the Airbyte → lakehouse ingestion: no Prefect imports here.

Modules, in the order data flows through them:

- ``catalog``     : the YAML catalog of sources (validated up front).
- ``connector``   : installs and runs a real Airbyte source connector through the Airbyte protocol.
- ``protocol``    : the protocol messages a connector prints (RECORD / STATE / LOG / TRACE).
- ``arrow_types`` : JSON schema → Arrow types, exactly as Airbyte's S3 destination maps them.
- ``records``     : protocol RECORD lines → Arrow batches with the Airbyte columns.
- ``parquet_parts``: bounded-memory Parquet part files, published atomically.
- ``storage``     : one code path for a local directory and ``s3://bucket/prefix``.
- ``layout``      : where bronze objects, manifests and connector state live.
- ``embedded``    : one embedded sync, end to end, into bronze.
- ``checks``      : validation of the batch that landed.
- ``manifest``    : the handoff contract to silver.
"""
