"""How silver reads a batch from bronze: exactly the files its manifest lists, never a listing, each checked
against the row count the manifest gives for it (a file that disagrees stops the batch before any commit).
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse_ingest.errors import ValidationFailed
from lakehouse_ingest.lake.documents import Manifest, ManifestFile
from lakehouse_ingest.lake.storage import LakeStorage


def read_batch(bronze: LakeStorage, manifest: Manifest) -> pa.Table:
    """The rows of the batch's files, exactly the files the manifest lists, checked against its counts."""
    tables = []
    for item in manifest.files:
        table = bronze.open_parquet(item.key).read()
        check_rows(manifest, item, table.num_rows)
        tables.append(table)
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def check_rows(manifest: Manifest, item: ManifestFile, found: int) -> None:
    """ValidationFailed unless ``found`` (the rows read from the file ``item``) is what the manifest says."""
    if found != item.rows:
        raise ValidationFailed(
            f"{manifest.source}.{manifest.stream}: {item.key} holds {found} rows, its manifest says {item.rows}"
        )
