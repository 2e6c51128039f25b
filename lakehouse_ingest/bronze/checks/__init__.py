"""Validation of one stream batch.

- ``validate``    the entry point: files listed, readable, Airbyte columns, row count, then the scan.
- ``results``     the outcome of one check.
- ``probes``      every check as a probe: decided from footer statistics where possible, else from data.
- ``scan``        the one pass over the batch's row groups that feeds every probe (parallel, bounded memory).
- ``uniqueness``  exact duplicate detection by 64-bit key hashes in cache-sized buckets.
- ``rules``       the catalog's declarative rules turned into probes.
"""
