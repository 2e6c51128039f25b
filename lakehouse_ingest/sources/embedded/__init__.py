"""The embedded engine: one sync of a real Airbyte source connector into bronze, no Airbyte platform.

Read in the order a sync runs: ``connector`` (install into its own virtualenv, run spec/check/discover/read)
→ ``plan`` (everything checkable before a write: config against the spec, check, discover, streams)
→ ``sync`` (RECORD lines → ``records`` → Parquet parts per stream; STATE kept) → ``state`` (committed after
the batches are handed off).
"""
