"""Sources synced by an Airbyte server: what a job wrote into bronze, and which jobs still need handing off.

- ``job_files``   a job's files per stream, as stream batches; the job's attempt logs archived.
- ``job_ledger``  the jobs of a connection already handed off, so none is left behind or done twice.

Uses the Airbyte client (``sources.airbyte``) and the bronze contracts.
"""
