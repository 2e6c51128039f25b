"""Silver: one Delta Lake table per stream, merged from validated bronze batches exactly once.

- ``merge``         the entry point: ``apply_manifest`` decides whether a batch is applied already, stale, a
                    full-refresh snapshot or incremental; incremental batches are merged (or appended) here.
- ``rewrite``       an incremental batch merged by rewriting only the data files its keys fall in, one commit;
                    ``rewrite_plan`` (which files, key ranges), ``rewrite_files`` (one file: read, match, write),
                    ``delta_stats`` (the statistics of a written file).
- ``overwrite``     a full-refresh snapshot replaces the table (and its tombstones) in one commit.
- ``dedup``         the newest-record rule: one row per key (``latest_per_key``), its SQL form (``newer``) and
                    its Arrow mask (``newer_mask``).
- ``tombstones``    the key and version of every CDC delete, so a late, older record cannot bring a row back.
- ``record``        the exactly-once record: Delta application transactions naming every applied batch.
- ``tables``        table and tombstone locations, opening and appending, delta-rs storage options.
- ``bronze_files``  a batch's rows read from exactly the files its manifest lists, checked against it.
- ``result``        ``SilverResult``: what applying one manifest did.

Reads manifests (``lake.documents.Manifest``, through ``bronze.manifest``) and their files; never imports
``sources``.
"""
