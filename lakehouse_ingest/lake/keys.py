"""Where things live in the bronze root.

- data:      ``airbyte/<source>/<stream>/<YYYY>_<MM>_<DD>_<epoch_ms>_<part>.parquet`` (Airbyte S3 destination's
             default path format, with ``s3_bucket_path=airbyte/<source>``)
- manifests: ``airbyte/<source>/<stream>/_manifests/<sync_id>.json`` (next to the data; ``_`` hides it
             from Spark, DuckDB globs and pyarrow datasets)
- state:     ``_state/airbyte/<source>/state.json`` (connector state and stream generations)
- runs:      ``_state/airbyte/<source>/last_success.json`` (end of the last fully successful sync)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lakehouse_ingest.lake.names import safe_stream_dir, validate_source_name

DATA_FILE = re.compile(r"(?P<date>\d{4}_\d{2}_\d{2})_(?P<epoch>\d+)_(?P<part>\d+)(?:-\d+)?\.parquet")


def stream_prefix(source: str, stream: str) -> str:
    """``airbyte/<source>/<stream>``: the folder of one stream's data."""
    return f"airbyte/{validate_source_name(source)}/{safe_stream_dir(stream)}"


def data_key(source: str, stream: str, started_at: datetime, part: int) -> str:
    """The key of one Parquet part; the date and epoch are the sync's start, constant for the sync."""
    utc = started_at.astimezone(UTC)
    epoch_ms = int(utc.timestamp() * 1000)
    return f"{stream_prefix(source, stream)}/{utc:%Y_%m_%d}_{epoch_ms}_{part}.parquet"


def manifest_key(source: str, stream: str, sync_id: int) -> str:
    """The key of the manifest that hands one validated batch to silver."""
    return f"{stream_prefix(source, stream)}/_manifests/{sync_id}.json"


def state_key(source: str) -> str:
    """The key of a source's persisted connector state."""
    return f"_state/airbyte/{validate_source_name(source)}/state.json"


def last_success_key(source: str) -> str:
    """The key recording when a source last synced with every stream handed off (``min_interval``)."""
    return f"_state/airbyte/{validate_source_name(source)}/last_success.json"


def job_ledger_key(source: str) -> str:
    """The key recording which Airbyte jobs of a platform source were processed (``job_ledger``)."""
    return f"_state/airbyte/{validate_source_name(source)}/jobs.json"
