"""Benchmark: merging a 1,000,000-row change batch into a 10,000,000-row silver table, ours vs DuckDB.

Set-up (not timed): a silver Delta table of ``--rows`` rows (Airbyte columns + id, email, age, score,
updated_at, _ab_cdc_deleted_at), the same rows as plain Parquet for DuckDB, and one bronze batch of ``--changes``
rows in Airbyte's format with its manifest: 70 % updates of existing keys (spread over the whole key range, so
every file of the table is touched), 25 % inserts of new keys, 5 % CDC deletes.

Each round, on fresh copies of the table, and each side in its own subprocess (peak RSS is that process's
VmHWM):
  (a) ours: ``lakehouse_ingest.silver.merge.apply_manifest`` (read the manifest's files, newest per key, tombstones,
      then ``silver.rewrite``: the files holding the batch's keys rewritten with Arrow, one Delta commit);
  (a') with ``--delta-merge``, also the delta-rs ``merge`` path (what ``apply_manifest`` did before, and still
      does for schema evolution or tables with writer features), on its own copy;
  (b) DuckDB: read the Parquet table and the batch, keep the newest row per key (window over key, by cursor and
      extraction time; the existing row wins a tie), drop deletes, write the result as Parquet.
Then (not timed) all results are compared: same row count, and the same checksum over every row of a 1 % sample
of keys (and over all rows).

    python bench/silver_merge.py [--rows 10000000] [--changes 1000000] [--rounds 3] [--recent] [--work DIR]
        [--duckdb window,join] [--delta-merge]

A set-up kept in ``--work`` is reused when its sizes match; a manifest it holds from before typed manifests is
written again as a typed one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_SYNC_ID = 1_700_000_000_000
CHANGE_SYNC_ID = BASE_SYNC_ID + 86_400_000
STRIDE = 7_919  # coprime with the row counts used: i -> i * STRIDE mod rows is a permutation
CHUNK = 1_000_000


def _rows(ids: Any, sync_id: int, version: int, deleted: Any = None, cursor: int | None = None) -> Any:
    """Rows with the Airbyte columns and a small payload for the given ids (an int64 array)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakehouse_ingest.bronze.arrow_types import AIRBYTE_META

    n = len(ids)
    text_ids = pc.utf8_lpad(ids.cast(pa.string()), 12, "0")
    no_changes = pa.ListArray.from_arrays(
        pa.repeat(pa.scalar(0, pa.int32()), n + 1), pa.array([], AIRBYTE_META.field("changes").type.value_type)
    )
    sync_ids = pa.repeat(pa.scalar(sync_id, pa.int64()), n)
    draws = pc.random(n, initializer=version * 1_000_003 + (ids[0].as_py() if n else 0))
    stamp = pa.timestamp("us", "UTC")
    return pa.table(
        {
            "_airbyte_raw_id": pc.binary_join_element_wise(f"{version:08d}-0000-4000-8000-", text_ids, ""),
            "_airbyte_extracted_at": sync_ids.cast(pa.timestamp("ms", "UTC")),
            "_airbyte_meta": pa.StructArray.from_arrays([sync_ids, no_changes], fields=list(AIRBYTE_META)),
            "_airbyte_generation_id": pa.repeat(pa.scalar(0, pa.int64()), n),
            "id": ids,
            "email": pc.binary_join_element_wise("user", ids.cast(pa.string()), f"+v{version}@example.com", ""),
            "age": pc.add(pc.floor(pc.multiply(draws, 72)).cast(pa.int64()), 18),
            "score": draws,
            "updated_at": pa.repeat(pa.scalar(cursor or sync_id * 1000 + version, pa.int64()), n).cast(stamp),
            "_ab_cdc_deleted_at": deleted if deleted is not None else pa.nulls(n, stamp),
        }
    )


def set_up(work: Path, rows: int, changes: int, recent: bool) -> dict[str, Any]:
    """The silver table (Delta), the same rows as Parquet for DuckDB, and the change batch with its manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import CommitProperties, write_deltalake

    from lakehouse_ingest.silver.record import GENERATION_METADATA, MODE_METADATA, SYNC_ID_METADATA

    silver = work / "silver" / "bench" / "users"
    duck_base = work / "duckdb" / "base"
    duck_base.mkdir(parents=True)
    for start in range(0, rows, CHUNK):
        chunk = _rows(pa.array(range(start, min(start + CHUNK, rows)), pa.int64()), BASE_SYNC_ID, 1)
        commit = CommitProperties(
            custom_metadata={
                SYNC_ID_METADATA: str(BASE_SYNC_ID),
                GENERATION_METADATA: "0",
                MODE_METADATA: "incremental",
            }
        )
        write_deltalake(str(silver), chunk, mode="append", commit_properties=commit)
        pq.write_table(chunk, duck_base / f"part-{start // CHUNK:04d}.parquet", row_group_size=CHUNK // 8)

    if math.gcd(STRIDE, rows // 10 if recent else rows) != 1:
        raise SystemExit(f"--rows {rows}: the updated keys are drawn with stride {STRIDE}, which must be coprime")
    updates, deletes = int(changes * 0.70), int(changes * 0.05)
    inserts, stale = changes - updates - deletes, updates // 20
    if recent:  # the changed keys are among the newest 10 % (rows created lately get updated)
        span = rows // 10
        existing = [rows - span + (i * STRIDE + 13) % span for i in range(updates + deletes)]
    else:
        existing = [(i * STRIDE + 13) % rows for i in range(updates + deletes)]
    stamp = pa.timestamp("us", "UTC")
    batch = pa.concat_tables(
        [
            _rows(pa.array(existing[stale:updates], pa.int64()), CHANGE_SYNC_ID, 2),
            # extracted later but older by the cursor than the table's rows: newest-wins keeps the table's
            _rows(pa.array(existing[:stale], pa.int64()), CHANGE_SYNC_ID, 3, cursor=BASE_SYNC_ID * 1000),
            _rows(pa.array(range(rows, rows + inserts), pa.int64()), CHANGE_SYNC_ID, 2),
            _rows(
                pa.array(existing[updates:], pa.int64()),
                CHANGE_SYNC_ID,
                2,
                deleted=pa.repeat(pa.scalar(CHANGE_SYNC_ID * 1000, stamp), deletes),
            ),
        ]
    )
    bronze = work / "bronze"
    prefix = "airbyte/bench/users"
    (bronze / prefix).mkdir(parents=True)
    key = f"{prefix}/2023_11_15_{CHANGE_SYNC_ID}_0.parquet"
    pq.write_table(batch, bronze / key, row_group_size=CHUNK // 8)
    write_manifest(bronze, key, batch.num_rows)
    return {
        "rows": rows,
        "expected": rows + inserts - deletes,
        "updates": updates,
        "stale": stale,
        "inserts": inserts,
        "deletes": deletes,
        "table_bytes": sum(f.stat().st_size for f in silver.glob("*.parquet")),
        "batch_bytes": (bronze / key).stat().st_size,
    }


def write_manifest(bronze: Path, key: str, rows: int) -> None:
    """The change batch's typed manifest (``lake.documents.Manifest``), as bronze hands a batch off."""
    from lakehouse_ingest.lake.documents import Manifest, ManifestFile, write_document
    from lakehouse_ingest.lake.keys import manifest_key
    from lakehouse_ingest.lake.local import LocalStorage

    storage = LocalStorage(bronze)
    batch_bytes = (bronze / key).stat().st_size
    at = datetime.fromtimestamp(CHANGE_SYNC_ID / 1000, UTC)
    manifest = Manifest(
        source="bench",
        stream="users",
        sync_id=CHANGE_SYNC_ID,
        generation_id=0,
        started_at=at,
        prefix=key.rsplit("/", 1)[0],
        sync_mode="incremental",
        destination_sync_mode="append",
        primary_key=[["id"]],
        cursor_field=["updated_at"],
        validated_at=at,
        bronze_root=storage.uri,
        rows=rows,
        bytes=batch_bytes,
        files=[ManifestFile(key=key, rows=rows, bytes=batch_bytes, url=storage.url_for(key))],
    )
    write_document(storage, manifest_key("bench", "users", CHANGE_SYNC_ID), manifest)


def typed_manifest(work: Path) -> None:
    """A kept set-up from before typed manifests: its manifest written again (same batch file, same rows)."""
    import pyarrow.parquet as pq

    from lakehouse_ingest.bronze.manifest import load_manifest
    from lakehouse_ingest.errors import DocumentError
    from lakehouse_ingest.lake.local import LocalStorage

    try:
        load_manifest(LocalStorage(work / "bronze"), "bench", "users", CHANGE_SYNC_ID)
    except DocumentError:
        key = f"airbyte/bench/users/2023_11_15_{CHANGE_SYNC_ID}_0.parquet"
        write_manifest(work / "bronze", key, pq.ParquetFile(work / "bronze" / key).metadata.num_rows)
        print("set-up's manifest written again as a typed manifest")


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(work: Path, delta_merge: bool = False) -> dict[str, Any]:
    from lakehouse_ingest.bronze.manifest import load_manifest
    from lakehouse_ingest.lake.local import LocalStorage
    from lakehouse_ingest.silver import merge as silver_merge
    from lakehouse_ingest.silver.merge import apply_manifest
    from lakehouse_ingest.silver.tables import SilverTables

    if delta_merge:  # the previous path: delta-rs merge (what a table the rewrite leaves to delta-rs gets)
        silver_merge.rewrite_merge = lambda *args, **kwargs: None
    bronze = LocalStorage(work / "bronze")
    tables = SilverTables(LocalStorage(work / "round" / ("silver-merge" if delta_merge else "silver")))
    cpu, started = _cpu_seconds(), time.perf_counter()
    manifest = load_manifest(bronze, "bench", "users", CHANGE_SYNC_ID)
    result = apply_manifest(bronze, tables, manifest)
    elapsed = time.perf_counter() - started
    assert result.applied
    return {
        "seconds": elapsed,
        "cpu": _cpu_seconds() - cpu,
        "inserted": result.inserted,
        "updated": result.updated,
        "deleted": result.deleted,
        "rss_mb": peak_rss_mb(),
    }


_NEWER = """(c.updated_at > b.updated_at OR (b.updated_at IS NULL AND c.updated_at IS NOT NULL)
    OR ((c.updated_at = b.updated_at OR (c.updated_at IS NULL AND b.updated_at IS NULL))
        AND c._airbyte_extracted_at > b._airbyte_extracted_at))"""

DUCKDB_MERGES = {
    # every row of the table and the batch through one window: newest per key, the table's row wins a tie
    "window": """
        SELECT * EXCLUDE (__src) FROM (
          SELECT *, 0 AS __src FROM {base} UNION ALL BY NAME SELECT *, 1 AS __src FROM {batch}
        )
        QUALIFY row_number() OVER (
          PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _airbyte_extracted_at DESC, __src ASC
        ) = 1 AND _ab_cdc_deleted_at IS NULL""",
    # newest per key within the batch, then: table rows no newer batch row replaces, plus the newer batch rows
    "join": """
        WITH c AS (
          SELECT * FROM {batch}
          QUALIFY row_number() OVER (
            PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _airbyte_extracted_at DESC
          ) = 1
        )
        SELECT b.* FROM {base} AS b
          LEFT JOIN (SELECT id, updated_at, _airbyte_extracted_at FROM c) AS c ON b.id = c.id
          WHERE c.id IS NULL OR NOT {newer}
        UNION ALL BY NAME
        SELECT c.* FROM c LEFT JOIN (SELECT id, updated_at, _airbyte_extracted_at FROM {base}) AS b ON b.id = c.id
          WHERE c._ab_cdc_deleted_at IS NULL AND (b.id IS NULL OR {newer})""",
}


def child_duckdb(work: Path, variant: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{work / 'round' / 'duckdb-tmp'}'")
    base = f"read_parquet('{work / 'duckdb' / 'base' / '*.parquet'}')"
    batch = f"read_parquet('{work / 'bronze' / 'airbyte' / 'bench' / 'users' / '*.parquet'}')"
    query = DUCKDB_MERGES[variant].format(base=base, batch=batch, newer=_NEWER)
    out = work / "round" / f"duckdb-{variant}.parquet"
    cpu, started = _cpu_seconds(), time.perf_counter()
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "cpu": _cpu_seconds() - cpu, "rss_mb": peak_rss_mb()}


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_verify(work: Path) -> dict[str, Any]:
    import duckdb
    from deltalake import DeltaTable

    con = duckdb.connect()
    checksum = "count(*), sum(hash(id, email, age, score, updated_at, _airbyte_raw_id, _airbyte_meta.sync_id))"
    found = {}
    sources = {}
    for name, folder in (("ours", "silver"), ("ours-merge", "silver-merge")):
        if (work / "round" / folder).exists():
            files = DeltaTable(str(work / "round" / folder / "bench" / "users")).file_uris()
            sources[name] = "read_parquet([{}])".format(", ".join(f"'{f}'" for f in files))
    sources.update(
        {
            v: f"'{work / 'round' / f'duckdb-{v}.parquet'}'"
            for v in DUCKDB_MERGES
            if (work / "round" / f"duckdb-{v}.parquet").exists()
        }
    )
    for name, source in sources.items():
        queries = {  # our own paths, no outside input
            "all": f"SELECT {checksum} FROM {source}",  # noqa: S608
            "sample": f"SELECT {checksum} FROM {source} WHERE id % 100 = 7",  # noqa: S608
            "duplicate_keys": f"SELECT count(*) - count(DISTINCT id) FROM {source}",  # noqa: S608
        }
        found[name] = {what: [str(v) for v in con.execute(sql).fetchone() or ()] for what, sql in queries.items()}
    return found


def run_child(role: str, work: Path) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", role, "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
        timeout=7200,
    )
    if output.returncode != 0:
        raise SystemExit(f"{role} failed:\n{output.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--recent", action="store_true", help="updates and deletes hit the newest 10 %% of keys (default: all keys)"
    )
    parser.add_argument("--work", type=Path, help="keep the data here (default: a temporary directory)")
    parser.add_argument(
        "--duckdb",
        default=",".join(DUCKDB_MERGES),
        help="the DuckDB merges to time, comma-separated (default: all; at 50M rows 'join' alone saves minutes)",
    )
    parser.add_argument(
        "--delta-merge", action="store_true", help="also time the delta-rs merge path (the one before the rewrite)"
    )
    parser.add_argument("--child", choices=["ours", "ours-merge", "verify", *DUCKDB_MERGES], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child in DUCKDB_MERGES:
            print(json.dumps(child_duckdb(args.work, args.child)))
        else:
            children = {"ours": child_ours, "verify": child_verify, "ours-merge": lambda w: child_ours(w, True)}
            print(json.dumps(children[args.child](args.work)))
        return
    if args.work:  # keep the set-up there and reuse it
        args.work.mkdir(parents=True, exist_ok=True)
        rounds(args.work, args)
        return
    with tempfile.TemporaryDirectory(prefix="silver-bench-") as tmp:
        rounds(Path(tmp), args)


def rounds(work: Path, args: argparse.Namespace) -> None:
    described = work / "setup.json"
    started = time.perf_counter()
    if described.exists() and json.loads(described.read_text())["args"] == [args.rows, args.changes, args.recent]:
        info = json.loads(described.read_text())
        print(f"set-up reused from {work}")
        typed_manifest(work)
    else:
        for old in ("silver", "duckdb", "bronze"):
            shutil.rmtree(work / old, ignore_errors=True)
        info = {**set_up(work, args.rows, args.changes, args.recent), "args": [args.rows, args.changes, args.recent]}
        described.write_text(json.dumps(info))
    print(
        f"set-up: {info['rows']:,}-row table ({info['table_bytes'] / 1e9:.2f} GB Parquet), change batch of "
        f"{args.changes:,} rows ({info['updates']:,} updates{' of recent keys' if args.recent else ''}, "
        f"{info['stale']:,} of them older than the table's row; "
        f"{info['inserts']:,} inserts; {info['deletes']:,} deletes; {info['batch_bytes'] / 1e6:.0f} MB), "
        f"in {time.perf_counter() - started:.0f} s (not timed)"
    )
    for round_ in range(1, args.rounds + 1):
        fresh = work / "round"
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(work / "silver", fresh / "silver")
        if args.delta_merge:
            shutil.copytree(work / "silver", fresh / "silver-merge")
        os.sync()  # the copies' writeback is set-up: not billed to whichever side runs first
        load = os.getloadavg()[0]
        ours = run_child("ours", work)
        merged = run_child("ours-merge", work) if args.delta_merge else None
        ducks = {variant: run_child(variant, work) for variant in args.duckdb.split(",")}
        check = run_child("verify", work)
        rows = int(check["ours"]["all"][0])
        assert all(check[v] == check["ours"] for v in check), f"results differ: {check}"
        assert rows == info["expected"], f"{rows} rows, expected {info['expected']}"
        assert check["ours"]["duplicate_keys"] == ["0"]
        best = min(ducks, key=lambda v: ducks[v]["seconds"])
        print(
            f"round {round_}: ours {ours['seconds']:.2f} s (CPU {ours['cpu']:.1f} s; +{ours['inserted']:,} "
            f"~{ours['updated']:,} -{ours['deleted']:,}), peak RSS {ours['rss_mb']:.0f} MB | "
            + (
                f"delta-rs merge {merged['seconds']:.2f} s (CPU {merged['cpu']:.1f} s), peak RSS "
                f"{merged['rss_mb']:.0f} MB | "
                if merged
                else ""
            )
            + " | ".join(
                f"duckdb {v} {d['seconds']:.2f} s (CPU {d['cpu']:.1f} s), peak RSS {d['rss_mb']:.0f} MB"
                for v, d in ducks.items()
            )
            + f" | ratio ours/duckdb (fastest, {best}) {ours['seconds'] / ducks[best]['seconds']:.2f}, CPU "
            f"{ours['cpu'] / ducks[best]['cpu']:.2f} | {rows:,} rows each, checksums (all rows, 1 % sample) equal "
            f"| load average {load:.1f} before, {os.getloadavg()[0]:.1f} after",
            flush=True,
        )


if __name__ == "__main__":
    main()
