"""Benchmark: validating a large bronze batch with the full rule set, ours vs DuckDB on the same files.

In one run: generate a bronze batch in Airbyte's S3-destination format (default 10,000,000 rows in 10 parts,
about 1 GB), then, each in its own subprocess so peak memory is its own and alternating for ``--repeat``
rounds, (a) our validation (built-in checks + every declarative rule) and (b) DuckDB running the same checks
as SQL over the same files. Prints both times, the ratio ours/DuckDB (target <= 1.0) and both peak RSS (ours:
target <= 1 GB). ``--data DIR`` keeps the generated batch for later runs.

    python bench/validation.py [--rows 10000000] [--parts 10] [--repeat 3] [--data /tmp/validation-bench]
"""

from __future__ import annotations

import argparse
import json
import statistics
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


FIRST = ["james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william", "elizabeth"]
LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez"]
DOMAINS = ["gmail.com", "yahoo.com", "hotmail.com", "example.org", "proton.me", "outlook.com"]
STREETS = ["Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park"]
CITIES = ["Springfield", "Riverside", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem"]


def generate(root: Path, rows: int, parts: int) -> list[dict[str, object]]:
    """Bronze parts ``airbyte/bench/users/<date>_<epoch>_<n>.parquet`` as Airbyte's destination writes them.

    Realistic values, so the files are as large as real ones (~100 bytes per row, snappy): random uuid4-like
    raw ids, extraction times spread over the sync, ids in random order (a permutation of 0..rows-1), unique
    emails, names, addresses, a JSON properties string, random update times. One row group per part
    (Airbyte's default 128 MB block holds a 1M-row part).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lakehouse_ingest.bronze.arrow_types import AIRBYTE_META

    def draw(n: int, high: float, seed: int) -> pa.Array:
        return pc.floor(pc.multiply(pc.random(n, initializer=seed), high)).cast(pa.int64())

    def digits(n: int, width: int, seed: int) -> pa.Array:
        return pc.utf8_lpad(draw(n, 10.0**width, seed).cast(pa.string()), width, "0")

    def pick(values: list[str], n: int, seed: int) -> pa.Array:
        return pa.array(values).take(draw(n, len(values), seed))

    folder = root / "airbyte" / "bench" / "users"
    folder.mkdir(parents=True)
    per_part, files = rows // parts, []
    permutation = pc.sort_indices(pc.random(per_part * parts, initializer=7)).cast(pa.int64())
    for part in range(parts):
        n, seed = per_part, part * 100
        ids = permutation.slice(part * per_part, per_part)
        first, last = pick(FIRST, n, seed + 1), pick(LAST, n, seed + 2)
        sync_ids = pa.repeat(pa.scalar(SYNC_ID, pa.int64()), n)
        no_changes = pa.ListArray.from_arrays(
            pa.repeat(pa.scalar(0, pa.int32()), n + 1), pa.array([], AIRBYTE_META.field("changes").type.value_type)
        )
        table = pa.table(
            {
                "_airbyte_raw_id": pc.binary_join_element_wise(
                    digits(n, 8, seed + 3),
                    digits(n, 4, seed + 4),
                    pc.binary_join_element_wise("4", digits(n, 3, seed + 5), ""),
                    pc.binary_join_element_wise("8", digits(n, 3, seed + 6), ""),
                    digits(n, 12, seed + 7),
                    "-",
                ),
                "_airbyte_extracted_at": pc.add(sync_ids, draw(n, 600_000, seed + 8)).cast(pa.timestamp("ms", "UTC")),
                "_airbyte_meta": pa.StructArray.from_arrays([sync_ids, no_changes], fields=list(AIRBYTE_META)),
                "_airbyte_generation_id": pa.repeat(pa.scalar(0, pa.int64()), n),
                "id": ids,
                "name": pc.binary_join_element_wise(first, last, " "),
                "email": pc.binary_join_element_wise(
                    first, ".", last, ids.cast(pa.string()), "@", pick(DOMAINS, n, seed + 9), ""
                ),
                "gender": pick(["Female", "Male", "Other"], n, seed + 10),
                "age": pc.add(draw(n, 72, seed + 11), 18),
                "address": pc.binary_join_element_wise(
                    draw(n, 99999, seed + 12).cast(pa.string()),
                    pick(STREETS, n, seed + 13),
                    "St,",
                    pick(CITIES, n, seed + 14),
                    " ",
                ),
                "properties": pc.binary_join_element_wise(
                    '{"score": ',
                    draw(n, 1e6, seed + 15).cast(pa.string()),
                    ', "visits": ',
                    draw(n, 1e4, seed + 16).cast(pa.string()),
                    ', "ref": "',
                    digits(n, 10, seed + 17),
                    '"}',
                    "",
                ),
                "updated_at": pc.subtract(
                    pa.repeat(pa.scalar(SYNC_ID * 1000, pa.int64()), n), draw(n, 86400e6 * 365, seed + 18)
                ).cast(pa.timestamp("us", "UTC")),
            }
        )
        key = f"airbyte/bench/users/{STARTED:%Y_%m_%d}_{SYNC_ID}_{part}.parquet"
        pq.write_table(table, root / key, row_group_size=1_000_000)
        files.append({"key": key, "rows": per_part, "bytes": (root / key).stat().st_size})
    return files


# The peak RSS of this process since its exec (ru_maxrss would also count the parent's memory before the fork).
PEAK_RSS = """
def peak_rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
"""

OURS = (
    PEAK_RSS
    + """
import json, sys, time
from datetime import datetime
from pathlib import Path
args = json.loads(sys.argv[1])
sys.path.insert(0, args["root"])
from lakehouse_ingest.catalog.sources import StreamChecks
from lakehouse_ingest.bronze.checks.validate import validate_batch
from lakehouse_ingest.bronze.batch import StreamBatch
from lakehouse_ingest.bronze.parts import PublishedPart
from lakehouse_ingest.lake.local import LocalStorage
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
                  "rss_mb": peak_rss_mb()}))
"""
)

DUCKDB = """
import json, sys, time
def peak_rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
import duckdb
args = json.loads(sys.argv[1])
files = [args["lake"] + "/" + f["key"] for f in args["files"]]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")  # it printed into the result line under load
started = time.perf_counter()
listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet([{listed}])")
row = con.execute(f'''
  SELECT count(*) AS rows,
         count(*) FILTER (WHERE _airbyte_meta.sync_id IS DISTINCT FROM {args["sync_id"]}) AS wrong_sync,
         count(*) FILTER (WHERE _airbyte_generation_id IS DISTINCT FROM 0) AS wrong_generation,
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
print(json.dumps({"seconds": elapsed, "result": [str(v) for v in row], "violations": sum(row[1:-2]) + row[-1],
                  "rss_mb": peak_rss_mb()}))
"""


def run(script: str, payload: dict[str, object]) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", script, json.dumps(payload)], capture_output=True, text=True, check=False, timeout=3600
    )
    if output.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{output.stderr[-3000:]}")
    # The result is the last JSON line; anything else a library prints (a progress bar) is not.
    lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"benchmark step printed no result:\n{output.stdout[-3000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs of each side")
    parser.add_argument("--data", type=Path, help="keep the generated batch here and reuse it on later runs")
    parser.add_argument(
        "--verify-data", action="store_true", help="also time ours with verify_data (every column decoded)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lake = args.data / f"{args.rows}-{args.parts}" if args.data else Path(tmp)
        listing = lake / "files.json"
        started, reused = time.perf_counter(), listing.exists()
        if reused:
            files = json.loads(listing.read_text())
        else:
            files = generate(lake, args.rows, args.parts)
            listing.write_text(json.dumps(files))
        size = sum(int(f["bytes"]) for f in files)  # type: ignore[call-overload]
        print(
            f"{args.rows:,} rows in {len(files)} parts, {size / 1e9:.2f} GB "
            f"({'reused' if reused else 'generated'} in {time.perf_counter() - started:.1f} s)"
        )
        payload = {
            "root": str(ROOT),
            "lake": str(lake),
            "files": files,
            "sync_id": SYNC_ID,
            "started": STARTED.isoformat(),
            "checks": CHECKS,
        }
        for f in files:  # both sides then read from the page cache, the first round included
            (lake / str(f["key"])).read_bytes()
        ratios = []
        for round_ in range(1, args.repeat + 1):
            ours, duck = run(OURS, payload), run(DUCKDB, payload)
            assert ours["passed"], ours["failure"]
            assert duck["violations"] == 0, duck["result"]
            ratio = float(ours["seconds"]) / float(duck["seconds"])  # type: ignore[arg-type]
            ratios.append(ratio)
            print(
                f"round {round_}: ours {ours['seconds']:.2f} s ({ours['checks']} checks passed, peak RSS "
                f"{ours['rss_mb']:.0f} MB, target <= 1024 MB); duckdb {duck['seconds']:.2f} s (peak RSS "
                f"{duck['rss_mb']:.0f} MB); ratio ours/duckdb {ratio:.2f} (target <= 1.0)"
            )
            if args.verify_data:
                full = run(OURS, {**payload, "checks": {**CHECKS, "verify_data": True}})
                assert full["passed"], full["failure"]
                seconds, base, other = (float(r["seconds"]) for r in (full, ours, duck))  # type: ignore[arg-type]
                print(
                    f"  with verify_data: {seconds:.2f} s ({seconds / base:.2f}x ours, {seconds / other:.2f}x duckdb), "
                    f"peak RSS {full['rss_mb']:.0f} MB"
                )
    if len(ratios) > 1:
        print(f"ratio best {min(ratios):.2f}, median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
