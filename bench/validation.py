"""Benchmark: validating a large bronze batch with the full rule set, ours vs DuckDB on the same files.

In one run: generate a bronze batch in Airbyte's S3-destination format (default 10,000,000 rows in 10 parts),
then, each in its own subprocess so peak memory is its own, (a) our validation (built-in checks + every
declarative rule) and (b) DuckDB running the same checks as SQL over the same files. Prints both times, the
ratio ours/DuckDB (target <= 1.0) and our peak RSS (target <= 1 GB).

    python bench/validation.py [--rows 10000000] [--parts 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYNC_ID = 1_700_000_000_000
STARTED = datetime.fromtimestamp(SYNC_ID / 1000, UTC)
CHECKS = {
    "min_records": 1,
    "not_null": ["email", "updated_at"],
    "unique": ["email"],
    "accepted_values": {"gender": ["Female", "Male", "Other"]},
    "range": {"age": {"min": 0, "max": 130}},
    "regex": {"email": "^[^@]+@[^@]+$"},
    "freshness": {"column": "_airbyte_extracted_at", "max_age": "3650d"},
    "max_changes": 0,
}


def generate(root: Path, rows: int, parts: int) -> list[dict[str, object]]:
    """Bronze parts ``airbyte/bench/users/<date>_<epoch>_<n>.parquet`` with the Airbyte columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lakehouse_ingest.arrow_types import AIRBYTE_META

    folder = root / "airbyte" / "bench" / "users"
    folder.mkdir(parents=True)
    per_part, files = rows // parts, []
    genders = pa.array(["Female", "Male", "Other"])
    for part in range(parts):
        start = part * per_part
        ids = pa.array(range(start, start + per_part), pa.int64())
        text_ids = pc.utf8_lpad(ids.cast(pa.string()), 12, "0")
        no_changes = pa.ListArray.from_arrays(
            pa.repeat(pa.scalar(0, pa.int32()), per_part + 1),
            pa.array([], AIRBYTE_META.field("changes").type.value_type),
        )
        sync_ids = pa.repeat(pa.scalar(SYNC_ID, pa.int64()), per_part)
        meta = pa.StructArray.from_arrays([sync_ids, no_changes], fields=list(AIRBYTE_META))
        draws = pc.random(per_part, initializer=part)
        table = pa.table(
            {
                "_airbyte_raw_id": pc.binary_join_element_wise("00000000-0000-4000-8000-", text_ids, ""),
                "_airbyte_extracted_at": sync_ids.cast(pa.timestamp("ms", "UTC")),
                "_airbyte_meta": meta,
                "_airbyte_generation_id": pa.repeat(pa.scalar(0, pa.int64()), per_part),
                "id": ids,
                "email": pc.binary_join_element_wise("user", ids.cast(pa.string()), "@example.com", ""),
                "gender": genders.take(pc.floor(pc.multiply(draws, 3)).cast(pa.int64())),
                "age": pc.add(pc.floor(pc.multiply(draws, 72)).cast(pa.int64()), 18),
                "updated_at": pa.repeat(pa.scalar(SYNC_ID * 1000, pa.int64()), per_part).cast(
                    pa.timestamp("us", "UTC")
                ),
            }
        )
        key = f"airbyte/bench/users/{STARTED:%Y_%m_%d}_{SYNC_ID}_{part}.parquet"
        pq.write_table(table, root / key, row_group_size=1_000_000)
        files.append({"key": key, "rows": per_part, "bytes": (root / key).stat().st_size})
    return files


OURS = """
import json, resource, sys, time
from datetime import datetime
from pathlib import Path
args = json.loads(sys.argv[1])
sys.path.insert(0, args["root"])
from lakehouse_ingest.catalog import StreamChecks
from lakehouse_ingest.checks import validate_batch
from lakehouse_ingest.embedded import StreamBatch
from lakehouse_ingest.parquet_parts import PublishedPart
from lakehouse_ingest.storage import LocalStorage
import pyarrow as pa
storage = LocalStorage(Path(args["lake"]))
files = [PublishedPart(f["key"], f["rows"], f["bytes"]) for f in args["files"]]
batch = StreamBatch("bench", "users", None, args["sync_id"], 0, datetime.fromisoformat(args["started"]),
                    "airbyte/bench/users", "incremental", "append", [["id"]], ["updated_at"], pa.schema([]),
                    records=sum(f.rows for f in files), files=files)
started = time.perf_counter()
result = validate_batch(storage, batch, StreamChecks.model_validate(args["checks"]))
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "passed": result.passed, "failure": result.failure, "checks": len(result.checks),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DUCKDB = """
import json, resource, sys, time
import duckdb
args = json.loads(sys.argv[1])
files = [args["lake"] + "/" + f["key"] for f in args["files"]]
con = duckdb.connect()
started = time.perf_counter()
listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet([{listed}])")
row = con.execute(f'''
  SELECT count(*) AS rows,
         count(*) FILTER (WHERE _airbyte_meta.sync_id IS DISTINCT FROM {args["sync_id"]}) AS wrong_sync,
         count(*) FILTER (WHERE id IS NULL) AS null_pk,
         count(*) - count(DISTINCT id) AS dup_pk,
         count(*) FILTER (WHERE email IS NULL) AS null_email,
         count(*) FILTER (WHERE updated_at IS NULL) AS null_updated,
         count(email) - count(DISTINCT email) AS dup_email,
         count(*) FILTER (WHERE gender NOT IN ('Female', 'Male', 'Other')) AS bad_gender,
         count(*) FILTER (WHERE age < 0 OR age > 130) AS bad_age,
         count(*) FILTER (WHERE NOT regexp_full_match(email, '[^@]+@[^@]+')) AS bad_email,
         max(_airbyte_extracted_at) AS newest,
         count(*) FILTER (WHERE len(_airbyte_meta.changes) > 0) AS changed
  FROM b''').fetchone()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "result": [str(v) for v in row],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(script: str, payload: dict[str, object]) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", script, json.dumps(payload)], capture_output=True, text=True, check=False, timeout=3600
    )
    if output.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{output.stderr[-3000:]}")
    result: dict[str, object] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--parts", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        files = generate(Path(tmp), args.rows, args.parts)
        size = sum(int(f["bytes"]) for f in files)  # type: ignore[call-overload]
        print(
            f"generated {args.rows:,} rows in {len(files)} parts, {size / 1e9:.2f} GB, "
            f"in {time.perf_counter() - started:.1f} s"
        )
        payload = {
            "root": str(ROOT),
            "lake": tmp,
            "files": files,
            "sync_id": SYNC_ID,
            "started": STARTED.isoformat(),
            "checks": CHECKS,
        }
        ours, duck = run(OURS, payload), run(DUCKDB, payload)
    assert ours["passed"], ours["failure"]
    print(
        f"ours:   {ours['seconds']:.2f} s, {ours['checks']} checks passed, peak RSS {ours['rss_mb']:.0f} MB "
        f"(target <= 1024 MB)"
    )
    print(f"duckdb: {duck['seconds']:.2f} s, same checks in one SQL pass, peak RSS {duck['rss_mb']:.0f} MB")
    print(f"ratio ours/duckdb: {float(ours['seconds']) / float(duck['seconds']):.2f} (target <= 1.0)")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
