"""Exploration: delta-rs ``merge`` options on the silver merge benchmark's data (issue 13), one subprocess each.

Uses the set-up that ``bench/silver_merge.py --work DIR`` leaves in DIR (run that first) and times
``apply_manifest`` with the delta-rs merge path (the file rewrite disabled) under each option:

    python bench/silver_merge_options.py --work DIR [--variants default,no-stream,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-stream": {"streamed_exec": False},
    "spill-256MB": {"max_spill_size": 256 * 1024 * 1024},
    "snappy": {"writer_properties": "snappy"},
    "target-32MB": {"table_property": {"delta.targetFileSize": str(32 * 1024 * 1024)}},
    # one delta-rs merge per data file, its slice of the batch and its key range as the predicate: memory of one
    # file, but one commit per file (not atomic, so not exactly-once): measured to see what delta-rs costs per file
    "per-file-merges": {"per_file": True},
    # the rewrite's Arrow decisions, but delta-rs writes the files and commits: the new content streamed into
    # write_deltalake(mode="overwrite", predicate=<the key range>) (replaceWhere), one commit
    "replace-where": {"replace_where": True},
}


def child(work: Path, variant: str) -> dict[str, Any]:
    from deltalake import DeltaTable, WriterProperties

    from lakehouse_ingest.bronze.manifest import load_manifest
    from lakehouse_ingest.lake.local import LocalStorage
    from lakehouse_ingest.silver import merge as silver_merge
    from lakehouse_ingest.silver import rewrite
    from lakehouse_ingest.silver.tables import SilverTables

    sys.path.insert(0, str(ROOT / "bench"))
    from silver_merge import CHANGE_SYNC_ID, _cpu_seconds, peak_rss_mb

    options = dict(VARIANTS[variant])
    replace_where = options.pop("replace_where", False)
    if replace_where:
        silver_merge.rewrite_merge = _replace_where(rewrite.rewrite_merge)
    else:
        silver_merge.rewrite_merge = lambda *args, **kwargs: None  # delta-rs merge
    table_property = options.pop("table_property", None)
    if table_property:
        DeltaTable(str(work / "round" / "silver" / "bench" / "users")).alter.set_table_properties(table_property)
    if options.get("writer_properties") == "snappy":
        options["writer_properties"] = WriterProperties(compression="SNAPPY")
    original = DeltaTable.merge
    per_file = options.pop("per_file", False)

    def merge(self: DeltaTable, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **{**kwargs, **options})

    DeltaTable.merge = merge  # type: ignore[method-assign]
    if per_file:
        silver_merge._merge = _per_file_merges
    bronze = LocalStorage(work / "bronze")
    tables = SilverTables(LocalStorage(work / "round" / "silver"))
    cpu, started = _cpu_seconds(), time.perf_counter()
    result = silver_merge.apply_manifest(bronze, tables, load_manifest(bronze, "bench", "users", CHANGE_SYNC_ID))
    assert result.applied
    found = {"seconds": time.perf_counter() - started, "cpu": _cpu_seconds() - cpu, "rss_mb": peak_rss_mb()}
    return {**found, "rows": DeltaTable(str(work / "round" / "silver" / "bench" / "users")).count()}


def _replace_where(rewrite_merge: Any) -> Any:
    """``rewrite_merge`` with its file writes and its commit replaced: every file's new rows go through a bounded
    queue into one ``write_deltalake(mode="overwrite", predicate=...)`` covering the batch's key range (in this
    benchmark every file is rewritten, so that range holds no file the rewrite leaves alone)."""
    import queue
    import threading

    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake

    from lakehouse_ingest.silver import rewrite, rewrite_files

    def run(storage: Any, table_key: str, table: Any, latest: Any, keys: list[str], cursor: Any, commit: Any) -> Any:
        rows: queue.Queue[Any] = queue.Queue(maxsize=2)
        done = object()

        def collect(merge: Any, table_rows: Any, bytes_per_row: float, ordered: bool = False) -> Any:
            rows.put(table_rows)
            return iter(())

        rewrite.write_rows = rewrite_files.write_rows = collect  # the rewrite's decisions, not its writes
        table.create_write_transaction = lambda *args, **kwargs: rows.put(done)  # the commit is write_deltalake's
        result: list[Any] = []
        worker = threading.Thread(
            target=lambda: result.append(rewrite_merge(storage, table_key, table, latest, keys, cursor, commit))
        )
        worker.start()
        schema = pa.schema(table.schema().to_arrow())

        def batches() -> Any:
            while (item := rows.get()) is not done:
                yield from item.cast(schema).to_batches()

        low, high = (v.as_py() for v in pc.min_max(latest.column(keys[0])).values())
        low = min(low, *(a["min.id"] for a in pa.table(table.get_add_actions(flatten=True)).to_pylist()))
        high = max(high, *(a["max.id"] for a in pa.table(table.get_add_actions(flatten=True)).to_pylist()))
        write_deltalake(
            table,
            pa.RecordBatchReader.from_batches(schema, batches()),
            mode="overwrite",
            predicate=f"id >= {low} AND id <= {high}",
            commit_properties=commit,
        )
        worker.join()
        return result[0]

    return run


def _per_file_merges(
    tables: Any,
    record: Any,
    uri: str,
    latest: Any,
    keys: list[str],
    cursor: str | None,
    manifest: Any,
    commit: Any,
    rows_in: int,
) -> Any:
    """The batch merged with delta-rs one data file at a time (the slice of the batch in that file's key range)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from lakehouse_ingest.silver.dedup import newer
    from lakehouse_ingest.silver.result import SilverResult

    table = record.table
    actions = pa.table(table.get_add_actions(flatten=True)).select(["min.id", "max.id"]).to_pylist()
    key = latest.column("id")
    covered = pa.repeat(pa.scalar(False), latest.num_rows)
    is_newer = newer("s", "t", cursor)
    for bounds in sorted(actions, key=lambda a: a["min.id"]):
        inside = pc.and_(pc.greater_equal(key, bounds["min.id"]), pc.less_equal(key, bounds["max.id"]))
        covered = pc.or_(covered, inside)
        part = latest.filter(inside)
        table = DeltaTable(uri, storage_options=tables.options)
        predicate = f"t.id = s.id AND t.id >= {bounds['min.id']} AND t.id <= {bounds['max.id']}"
        (
            table.merge(part, predicate, source_alias="s", target_alias="t", commit_properties=commit)
            .when_matched_delete(predicate=f"s._ab_cdc_deleted_at IS NOT NULL AND ({is_newer})")
            .when_matched_update_all(predicate=f"s._ab_cdc_deleted_at IS NULL AND ({is_newer})")
            .when_not_matched_insert_all(predicate="s._ab_cdc_deleted_at IS NULL")
            .execute()
        )
    rest = latest.filter(pc.and_(pc.invert(covered), pc.is_null(latest.column("_ab_cdc_deleted_at"))))
    tables.append(DeltaTable(uri, storage_options=tables.options), rest, commit)
    return SilverResult("bench", "users", 0, uri, True, rows_in)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.work, args.child)))
        return
    for variant in args.variants.split(","):
        shutil.rmtree(args.work / "round", ignore_errors=True)
        shutil.copytree(args.work / "silver", args.work / "round" / "silver")
        load = os.getloadavg()[0]
        out = subprocess.run(
            [sys.executable, __file__, "--work", str(args.work), "--child", variant],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"{variant}: failed {out.stderr[-2000:]}", flush=True)
            continue
        found = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{variant}: {found['seconds']:.2f} s (CPU {found['cpu']:.1f} s), peak RSS {found['rss_mb']:.0f} MB, "
            f"{found['rows']:,} rows after "
            f"| load average {load:.1f} before, {os.getloadavg()[0]:.1f} after",
            flush=True,
        )


if __name__ == "__main__":
    main()
