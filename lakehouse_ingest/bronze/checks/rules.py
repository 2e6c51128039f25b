"""The catalog's declarative rules (``streams[].checks``) turned into probes, and the rules the row count decides.

``rule_probes`` gives the probes of a stream's rules (``not_null``, ``unique``, ``accepted_values``,
``range``, ``regex``, ``freshness``, plus primary-key uniqueness); ``changes_probe`` the one of
``max_changes``; ``Decodable`` is ``verify_data``; ``size_rules`` decides ``zero_rows`` and ``min_records``.
The probes only about these rules live here; those the built-in checks share are in ``probes``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_ingest.bronze.checks.probes import (
    CountProbe,
    Files,
    Fixed,
    Footer,
    NotNull,
    Probe,
    Unit,
    read_failure,
)
from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.bronze.checks.uniqueness import Unique
from lakehouse_ingest.catalog.sources import FreshnessRule, RangeRule, StreamChecks

# Airbyte columns older destinations store as int64 epoch milliseconds (accepted by checks.airbyte_columns).
_EPOCH_MS_COLUMNS = {"_airbyte_extracted_at", "_airbyte_emitted_at"}


def rule_probes(rows: int, checks: StreamChecks, primary_key: list[str]) -> list[Probe]:
    """The probes of every rule the catalog declares for the stream, plus primary-key uniqueness."""
    probes: list[Probe] = []
    if primary_key:
        probes.append(Unique("primary_key_unique", primary_key, rows))
    probes += [NotNull(column) for column in checks.not_null]
    probes += [Unique(f"unique({column})", [column], rows) for column in checks.unique]
    probes += [Accepted(column, values) for column, values in checks.accepted_values.items()]
    probes += [Range(column, rule) for column, rule in checks.range.items()]
    probes += [Regex(column, pattern) for column, pattern in checks.regex.items()]
    if checks.freshness is not None:
        probes.append(Freshness(checks.freshness))
    return probes


def size_rules(rows: int, checks: StreamChecks, overwrite: bool = False) -> list[CheckResult]:
    """The rules decided by the row count alone.

    An empty batch fails by default when it is an overwrite's snapshot: applied, it would empty the silver
    table, and a source that suddenly returns nothing is more often broken than empty. ``zero_rows: allow``
    says an empty snapshot is real.
    """
    results: list[CheckResult] = []
    if rows == 0:
        policy = checks.zero_rows or ("fail" if overwrite else "allow")
        reason = "" if checks.zero_rows else (", the default for overwrite" if overwrite else ", the default")
        results.append(CheckResult("zero_rows", policy == "allow", f"empty batch ({policy}{reason})"))
    if checks.min_records is not None:
        ok = rows >= checks.min_records
        results.append(CheckResult("min_records", ok, f"{rows} rows, at least {checks.min_records} required"))
    return results


def changes_probe(files: Files, checks: StreamChecks) -> Probe:
    """Airbyte's recorded changes (destinations before 1.0 record none)."""
    if any("_airbyte_meta" not in p.schema_arrow.names for _, p in files):
        return Fixed(CheckResult("airbyte_changes", True, "not recorded by this destination version"))
    return Changes(checks.max_changes)


class Decodable(Probe):
    """``verify_data``: every column of every row group decodes.

    Footer statistics decide many checks without reading their columns, and columns no check names are
    never read; a corrupt page there would pass validation and fail silver's merge instead. This probe
    reads them all (in the same pass as the other probes), so such a file is caught and quarantined here.
    """

    name = "decodable"

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)

    def data(self, table: pa.Table, unit: Unit) -> Any:
        return table.num_rows

    def merge(self, partials: list[Any]) -> Any:
        return sum(partials)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        if failed := read_failure(self.name, partials):
            return failed
        rows = sum(int(p) for _, p in partials)
        return CheckResult(self.name, True, f"{len(self.columns)} column(s) of {rows} row(s) decoded")


class Accepted(CountProbe):
    """``accepted_values``: a column read dictionary-encoded is judged on its dictionary only."""

    what = "outside the accepted values"

    def __init__(self, column: str, values: list[Any]) -> None:
        super().__init__(f"accepted_values({column})", column)
        self.allowed = pa.array(values)
        self.dictionary_ok = self.columns

    def _outside(self, array: pa.Array) -> pa.Array:
        # Cast the accepted values, not the data: a failed cast then quotes the catalog, never a data value.
        accepted = self.allowed.cast(array.type) if array.type != self.allowed.type else self.allowed
        # is_in never yields null (a null is just not in the set): accept nulls explicitly, as the other rules do.
        return pc.invert(pc.or_(pc.is_in(array, value_set=accepted), pc.is_null(array)))

    def data(self, table: pa.Table, unit: Unit) -> Any:
        values = table.column(self.column).combine_chunks()
        if isinstance(values, pa.DictionaryArray):
            outside = self._outside(values.dictionary).take(values.indices)  # null index: null, not counted
            return int(pc.sum(outside).as_py() or 0)
        return int(pc.sum(self._outside(values)).as_py() or 0)


class Range(CountProbe):
    """``range``: row groups whose min/max statistics lie inside the bounds are not read."""

    def __init__(self, column: str, rule: RangeRule) -> None:
        super().__init__(f"range({column})", column)
        self.rule = rule
        self.what = f"outside [{rule.min}, {rule.max}]"

    def footer(self, footer: Footer, group: int) -> Any:
        kind = footer.parquet.schema_arrow.field(self.column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
        stats = footer.statistics(group, self.column)
        if stats is None:
            return None
        if not stats.has_min_max:  # only nulls (or no rows): nothing outside
            return 0 if stats.null_count == footer.rows(group) else None
        low_ok = self.rule.min is None or stats.min >= self.rule.min
        high_ok = self.rule.max is None or stats.max <= self.rule.max
        return 0 if low_ok and high_ok else None

    def count(self, values: pa.Array) -> int:
        count = 0
        if self.rule.min is not None:
            count += int(pc.sum(pc.less(values, self.rule.min)).as_py() or 0)
        if self.rule.max is not None:
            count += int(pc.sum(pc.greater(values, self.rule.max)).as_py() or 0)
        return count


class Regex(CountProbe):
    """``regex``: values (cast to string) must match; nulls are not counted."""

    def __init__(self, column: str, pattern: str) -> None:
        super().__init__(f"regex({column})", column)
        re.compile(pattern)
        self.pattern = pattern
        self.what = f"not matching {pattern!r}"

    def count(self, values: pa.Array) -> int:
        matched = pc.match_substring_regex(values.cast(pa.string()), pattern=self.pattern)
        return int(pc.sum(pc.invert(pc.fill_null(matched, True))).as_py() or 0)


class Changes(CountProbe):
    """Rows where Airbyte recorded changes (nulled or truncated values); fails above ``limit`` when given."""

    what = "with changes recorded by Airbyte"

    def __init__(self, limit: int | None) -> None:
        super().__init__("airbyte_changes", "_airbyte_meta", ["changes"])
        self.limit = limit

    def count(self, values: pa.Array) -> int:
        lengths = pc.list_value_length(values)
        return int(pc.sum(pc.greater(pc.fill_null(lengths, 0), 0)).as_py() or 0)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        counted = super().result(partials, from_footer)
        if not counted.passed and "cannot be read" in counted.detail:
            return counted
        count = sum(int(p) for _, p in partials)
        passed = self.limit is None or count <= self.limit
        limit_text = "report only" if self.limit is None else f"at most {self.limit}"
        return CheckResult(self.name, passed, f"{counted.detail} ({limit_text})", counted.file if count else None)


class Freshness(Probe):
    """The newest value of a timestamp column (max statistics when present) must be recent enough."""

    def __init__(self, rule: FreshnessRule) -> None:
        self.rule = rule
        self.name = f"freshness({rule.column})"
        self.columns = (rule.column,)

    def _unit_seconds(self, parquet: pq.ParquetFile) -> float | None:
        kind = parquet.schema_arrow.field(self.rule.column).type
        if pa.types.is_int64(kind) and self.rule.column in _EPOCH_MS_COLUMNS:
            return 1e-3
        if pa.types.is_timestamp(kind):
            return None  # statistics come back as datetimes
        return -1.0  # not a timestamp: nothing to judge by

    def footer(self, footer: Footer, group: int) -> Any:
        scale = self._unit_seconds(footer.parquet)
        if scale == -1.0:
            return ("none",)
        stats = footer.statistics(group, self.rule.column)
        if stats is None:
            return None
        if not stats.has_min_max:
            return ("none",) if stats.null_count == footer.rows(group) else None
        top = stats.max
        if scale is not None and isinstance(top, int):
            return ("max", top * scale)
        if hasattr(top, "timestamp"):
            if top.tzinfo is None:  # a naive timestamp: read as UTC, as the data path does
                top = top.replace(tzinfo=UTC)
            return ("max", float(top.timestamp()))
        return None

    def data(self, table: pa.Table, unit: Unit) -> Any:
        values = table.column(self.rule.column).combine_chunks()
        if pa.types.is_int64(values.type) and self.rule.column in _EPOCH_MS_COLUMNS:
            values = values.cast(pa.timestamp("ms", tz="UTC"))
        if not pa.types.is_timestamp(values.type) or values.null_count == len(values):
            return ("none",)
        top = pc.max(values).cast(pa.timestamp("us", tz="UTC")).value
        return ("max", top / 1e6)

    def merge(self, partials: list[Any]) -> Any:
        tops = [p[1] for p in partials if p[0] == "max"]
        return ("max", max(tops)) if tops else ("none",)

    def result(self, partials: list[tuple[Unit, Any]], from_footer: bool) -> CheckResult:
        if failed := read_failure(self.name, partials):
            return failed
        tops = [p[1] for _, p in partials if p[0] == "max"]
        if not tops:
            return CheckResult(self.name, False, "no timestamp value to judge freshness by")
        age = time.time() - max(tops)
        return CheckResult(
            self.name,
            age <= self.rule.seconds,
            f"newest value is {age:.0f} s old, at most {self.rule.seconds:.0f} s allowed",
        )
