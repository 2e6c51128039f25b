"""What a run decides, as pure functions the Prefect flows compose: statuses and reports of each stream,
which sources are too soon to sync (``min_interval``), which Airbyte jobs and snapshots to hand off, and
what a dry run would do. No Prefect import: the flows only call these and act on the plans.
"""
