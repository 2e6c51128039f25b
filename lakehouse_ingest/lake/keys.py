"""Every key in the lake, built and parsed here and nowhere else.

Bronze root:

- data:       ``airbyte/<source>/<stream>/<YYYY>_<MM>_<DD>_<epoch_ms>_<part>.parquet`` (Airbyte's S3 destination
              default path format, with ``s3_bucket_path=airbyte/<source>``)
- manifests:  ``airbyte/<source>/<stream>/_manifests/<sync_id>.json`` (next to the data; ``_`` hides them from
              Spark, DuckDB globs and pyarrow datasets)
- reports:    ``airbyte/<source>/<stream>/_reports/<sync_id>.json``
- quarantine: ``airbyte/<source>/<stream>/_quarantine/<sync_id>.json``
- state:      ``_state/airbyte/<source>/state.json`` (connector state and stream generations)
- runs:       ``_state/airbyte/<source>/last_success.json`` (end of the last fully successful sync)
- jobs:       ``_state/airbyte/<source>/jobs/<connection_id>.json`` (Airbyte jobs handed off; earlier ``jobs.json``)
- syncs:      ``_state/airbyte/<source>/syncs/<sync_id>.json`` (the process running an embedded sync: janitor)

Silver root: ``<source>/<stream>`` (a Delta table per stream), ``_tombstones/<source>/<stream>``.

Logs root: ``job-<id>/attempt-<n>/logs.log`` and ``metadata.json`` beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from lakehouse_ingest.errors import ConfigError
from lakehouse_ingest.lake.names import safe_stream_dir, validate_source_name
from lakehouse_ingest.lake.storage import check_key

DATA_FILE = re.compile(r"(?P<date>\d{4}_\d{2}_\d{2})_(?P<epoch>\d+)_(?P<part>\d+)(?:-\d+)?\.parquet")
_MANIFEST_LOCATION = re.compile(
    r"(?P<root>.*?)/?(?P<key>airbyte/(?P<source>[^/]+)/(?P<stream>[^/]+)/_manifests/(?P<id>\d+)\.json)"
)


@dataclass(frozen=True, order=True)
class BatchKey:
    """Which batch: source, stream folder and sync id (a manifest's, report's or quarantine mark's key)."""

    source: str
    stream: str
    sync_id: int


def stream_prefix(source: str, stream: str) -> str:
    """``airbyte/<source>/<stream>``: the folder of one stream's data."""
    return f"airbyte/{validate_source_name(source)}/{safe_stream_dir(stream)}"


def source_prefix(source: str) -> str:
    """``airbyte/<source>``: every stream folder of one source."""
    return f"airbyte/{validate_source_name(source)}"


def data_key(source: str, stream: str, started_at: datetime, part: int) -> str:
    """The key of one Parquet part; the date and epoch are the sync's start, constant for the sync."""
    utc = started_at.astimezone(UTC)
    epoch_ms = int(utc.timestamp() * 1000)
    return f"{stream_prefix(source, stream)}/{utc:%Y_%m_%d}_{epoch_ms}_{part}.parquet"


def data_file_epoch(key: str) -> int | None:
    """The epoch (ms) in a data file's name, or None when ``key`` is not one of Airbyte's data files."""
    match = DATA_FILE.fullmatch(key.rsplit("/", 1)[-1])
    return int(match.group("epoch")) if match else None


def is_data_file_of(key: str, prefix: str) -> bool:
    """``key`` names a data file directly in the folder ``prefix`` (not in a subfolder)."""
    return key.count("/") == prefix.count("/") + 1 and data_file_epoch(key) is not None


def manifests_prefix(source: str, stream: str) -> str:
    """``airbyte/<source>/<stream>/_manifests``."""
    return f"{stream_prefix(source, stream)}/_manifests"


def manifest_key(source: str, stream: str, sync_id: int) -> str:
    """The key of the manifest that hands one validated batch to silver."""
    return f"{manifests_prefix(source, stream)}/{sync_id}.json"


def report_key(source: str, stream: str, sync_id: int) -> str:
    """The key of one batch's validation report."""
    return f"{stream_prefix(source, stream)}/_reports/{sync_id}.json"


def quarantine_key(source: str, stream: str, sync_id: int) -> str:
    """The key of a failed batch's quarantine mark."""
    return f"{stream_prefix(source, stream)}/_quarantine/{sync_id}.json"


def damaged_manifest_key(source: str, stream: str, sync_id: int) -> str:
    """Where a manifest that cannot be read is set aside (out of ``_manifests``, so its stream flows again)."""
    return f"{stream_prefix(source, stream)}/_quarantine/{sync_id}.damaged-manifest"


def damaged_manifest_sync_id(key: str) -> int | None:
    """The sync id of a manifest set aside as damaged (``damaged_manifest_key``), or None for any other key."""
    name = key.rsplit("/", 1)[-1]
    suffix = ".damaged-manifest"
    return int(name[: -len(suffix)]) if name.endswith(suffix) and name[: -len(suffix)].isdigit() else None


def parse_manifest_key(key: str) -> BatchKey | None:
    """The batch a manifest key names, or None when ``key`` is not a manifest."""
    match = _MANIFEST_LOCATION.fullmatch(key)
    if not match or match["root"]:
        return None
    return BatchKey(match["source"], match["stream"], int(match["id"]))


def parse_manifest_location(location: str) -> tuple[str, BatchKey]:
    """``<bronze root>/airbyte/<source>/<stream>/_manifests/<sync_id>.json`` → (bronze root, batch)."""
    match = _MANIFEST_LOCATION.fullmatch(location)
    if not match:
        raise ConfigError(f"not a bronze manifest location: {location!r}")
    return match["root"] or ".", BatchKey(match["source"], match["stream"], int(match["id"]))


def manifest_sync_id(key: str) -> int | None:
    """The sync id of a key in a ``_manifests`` folder, or None for anything else there."""
    name = key.rsplit("/", 1)[-1]
    return int(name[:-5]) if name.endswith(".json") and name[:-5].isdigit() else None


def parse_batch_id(item: str) -> BatchKey:
    """``SOURCE/STREAM/SYNC_ID`` (how the CLI names a quarantined batch) → its parts."""
    parts = item.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ConfigError(f"--revalidate takes SOURCE/STREAM/SYNC_ID, got {item!r}")
    return BatchKey(parts[0], parts[1], int(parts[2]))


def state_key(source: str) -> str:
    """The key of a source's persisted connector state."""
    return f"_state/airbyte/{validate_source_name(source)}/state.json"


def last_success_key(source: str) -> str:
    """The key recording when a source last synced with every stream handed off (``min_interval``)."""
    return f"_state/airbyte/{validate_source_name(source)}/last_success.json"


def job_ledger_key(source: str, connection_id: str | None = None) -> str:
    """The key recording which Airbyte jobs of a platform source's connection were processed (``job_ledger``);
    without a connection, where versions before connection-keyed ledgers kept the source's one record."""
    if connection_id is None:
        return f"_state/airbyte/{validate_source_name(source)}/jobs.json"
    return f"_state/airbyte/{validate_source_name(source)}/jobs/{check_key(connection_id)}.json"


def sync_owners_prefix(source: str) -> str:
    """``_state/airbyte/<source>/syncs``: which process runs (or ran) each recent embedded sync of a source."""
    return f"_state/airbyte/{validate_source_name(source)}/syncs"


def sync_owner_key(source: str, sync_id: int) -> str:
    """The record of the process running one embedded sync (``bronze.janitor``)."""
    return f"{sync_owners_prefix(source)}/{sync_id}.json"


def silver_table_key(source: str, stream: str) -> str:
    """``<source>/<stream>`` under the silver root: one Delta table per stream."""
    return f"{validate_source_name(source)}/{safe_stream_dir(stream)}"


def tombstone_table_key(source: str, stream: str) -> str:
    """``_tombstones/<source>/<stream>`` under the silver root: the stream's CDC deletes."""
    return f"_tombstones/{silver_table_key(source, stream)}"


def attempt_log_folder(job_id: int, attempt_number: int) -> str:
    """``job-<id>/attempt-<n>`` under the logs root (``n`` counts from 1)."""
    return f"job-{job_id}/attempt-{attempt_number}"
