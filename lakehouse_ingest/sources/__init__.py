"""Where rows come from, written into bronze in Airbyte's S3-destination layout.

- ``protocol``    the Airbyte protocol messages connectors print and the stream keys state and stats use.
- ``embedded/``   no Airbyte platform: a real source connector run locally, its records turned into Parquet.
- ``airbyte/``    an Airbyte server's API: HTTP only (client, auth, typed payloads, trigger and await).
- ``platform/``   what an Airbyte job wrote into bronze, and which jobs of a connection still need handing off.

May import ``bronze`` (the batch contract and Parquet format they produce), ``lake`` and ``catalog``;
``bronze`` and ``silver`` never import ``sources``.
"""
