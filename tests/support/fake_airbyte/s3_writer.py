"""A writer for the fake Airbyte's jobs that lands what Airbyte's S3 destination would: real Parquet files in the
destination's layout, in a real S3 server (the tests' SeaweedFS), so the platform flow reads what it reads in
production.
"""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from support.fake_airbyte.naming import s3_folder
from support.fake_airbyte.state import STREAM_JSON_SCHEMA, FakeConnection, FakeJob, Writer

if TYPE_CHECKING:
    from support.seaweed import S3Endpoint


def airbyte_s3_writer(
    endpoint: S3Endpoint,
    bucket: str,
    rows_per_stream: int = 50,
    *,
    distinct_ids: bool = False,
    written_ids: dict[tuple[int, str], list[int]] | None = None,
) -> Writer:
    """A writer that lands real Parquet in the Airbyte S3 destination layout, one part per stream and job.

    Key: ``airbyte/<source_name>/<folder>/<YYYY>_<MM>_<DD>_<epoch_ms>_0.parquet`` (epoch = job start, UTC), the
    project's path format ``${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_`` under ``s3_bucket_path =
    airbyte/<source>``: ``<folder>`` is ``toS3SafeCharacters(prefix + name)`` of the name the destination receives
    (research rule 3; no namespace folder in that format). Records carry that received name as their stream.
    Rows come from :class:`lakehouse_ingest.sources.embedded.records.RecordConverter` with ``sync_id = job.id`` and
    ``generation_id = 0`` over :data:`STREAM_JSON_SCHEMA`; objects carry ``x-amz-meta-ab-generation-id: 0``.
    The result is keyed by the source's stream name, as Airbyte's stats are.

    ``distinct_ids``: each job's rows have ids of their own (``job.id * 1000 + index``), so a job lost on the way
    to silver shows as missing keys; ``written_ids`` (when given) records them by ``(job id, destination name)``.
    """
    import pyarrow.parquet as pq

    from lakehouse_ingest.bronze.arrow_types import stream_columns
    from lakehouse_ingest.sources.embedded.records import RecordConverter

    columns = stream_columns(STREAM_JSON_SCHEMA)
    client = endpoint.boto3_client()
    client_lock = threading.Lock()

    def write(job: FakeJob, connection: FakeConnection) -> dict[str, int]:
        start = job.started_at or job.created_at
        start_ms = int(start * 1000)
        day = datetime.fromtimestamp(start, UTC)
        written: dict[str, int] = {}
        for stream in job.streams:
            names = job.names.get(stream)
            received = names.destination_name if names is not None else stream
            converter = RecordConverter(received, columns, sync_id=job.id, generation_id=0)
            emitted_ms = int(time.time() * 1000)
            lines = [
                json.dumps(
                    {
                        "type": "RECORD",
                        "record": {
                            "stream": received,
                            "data": {
                                "id": job.id * 1000 + index if distinct_ids else index,
                                "name": f"{stream}-{index}",
                                "updated_at": datetime.fromtimestamp(start - index, UTC).isoformat(),
                            },
                            "emitted_at": emitted_ms,
                        },
                    }
                ).encode()
                for index in range(rows_per_stream)
            ]
            table = converter.convert(lines)
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="NONE")
            key = f"airbyte/{connection.source_name}/{s3_folder(received)}/{day:%Y_%m_%d}_{start_ms}_0.parquet"
            with client_lock:
                client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue(), Metadata={"ab-generation-id": "0"})
            written[stream] = table.num_rows
            if written_ids is not None:
                written_ids[(job.id, received)] = table.column("id").to_pylist()
        return written

    return write
