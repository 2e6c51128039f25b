"""The lake underneath every layer: where objects live and what they are called.

- ``storage``   one interface for a local directory and ``s3://bucket[/prefix]``; atomic writes.
- ``s3``        the one S3 configuration (endpoint, keys, timeouts) and what boto3, pyarrow and delta-rs
                are given from it.
- ``keys``      every key of bronze, silver and the logs root, built and parsed here only.
- ``names``     source, stream and column names as Airbyte sanitizes them.
- ``documents`` every JSON document kept in the lake, typed, read and written through one pair of helpers.

Imports nothing from the layers above (catalog, sources, bronze, silver, runs).
"""
