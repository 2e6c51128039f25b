"""The one pass over a batch's row groups that feeds every probe: parallel, each column read once, bounded memory.

Per file, a probe whose row groups the footers all decide reads nothing there. The rest are read in
*units* (one row group, or consecutive small ones together; a large row group batch by batch), and all
probes reading a unit share one read of the union of their columns. Units are read in parallel, each worker
thread with its own file handle, and their columns are dropped as soon as the probes have seen them, so
memory stays bounded by a few row groups. A unit that cannot be read fails only the probes whose columns
are unreadable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_ingest.bronze.checks.probes import Files, Footer, Probe, ReadError, Unit
from lakehouse_ingest.bronze.checks.results import CheckResult, short_error

# Opens a private reader of file ``index`` for one worker thread (``read_dictionary``: columns to keep encoded).
Opener = Callable[[int, Sequence[str]], pq.ParquetFile]


def workers() -> int:
    """Threads for reading row groups (pyarrow releases the GIL while decoding)."""
    return max(1, min(8, os.cpu_count() or 1))


_RUN_ROWS = 65_536  # small row groups are read together, up to this many rows
_RUN_GROUPS = 256


def scan(files: Files, probes: list[Probe], opener: Opener) -> list[CheckResult]:
    """Evaluate ``probes`` over the batch in one pass: footers first, then each needed column once per row group.

    Per file, a probe whose every row group the footers decide reads nothing there; otherwise it reads the
    file's row groups. All probes reading a row group share one read of the union of their columns.
    """
    results: dict[int, CheckResult] = {}
    partials: dict[int, list[tuple[Unit, Any]]] = {i: [] for i in range(len(probes))}
    from_footer = dict.fromkeys(range(len(probes)), True)
    wanted: list[tuple[Unit, list[int]]] = []
    units: list[Unit] = []
    for index, (key, parquet) in enumerate(files):
        footer = Footer.of(parquet)
        runs = _runs(index, key, footer)
        units += runs
        readers_here = []
        for number, probe in enumerate(probes):
            if number in results:
                continue
            if (missing := probe.missing(parquet)) is not None:
                results[number] = CheckResult(missing.name, False, missing.detail, key)
                continue
            decided = [probe.footer(footer, group) for group in range(parquet.num_row_groups)]
            if all(d is not None for d in decided):
                partials[number] += [(_single(index, key, footer, g), d) for g, d in enumerate(decided)]
            else:
                readers_here.append(number)
                from_footer[number] = False
        wanted += [(run, readers_here) for run in runs if readers_here]
    wanted = [(unit, [n for n in ns if n not in results]) for unit, ns in wanted]
    wanted = [(unit, ns) for unit, ns in wanted if ns]
    needed = {n for _, ns in wanted for n in ns}
    plain = {c for n in needed for c in probes[n].columns if c not in probes[n].dictionary_ok}
    encoded = sorted({c for n in needed for c in probes[n].dictionary_ok} - plain)
    readers = _Readers(opener, encoded)
    threaded = len(wanted) > 1 and workers() > 1

    def run(item: tuple[Unit, list[int]]) -> dict[int, Any]:
        unit, numbers = item
        return _read_unit(readers, unit, [(n, probes[n]) for n in numbers], use_threads=not threaded)

    if threaded:
        with ThreadPoolExecutor(max_workers=workers()) as pool:
            outcomes = list(pool.map(run, wanted))
    else:
        outcomes = [run(item) for item in wanted]
    for (unit, _), outcome in zip(wanted, outcomes, strict=True):
        for number, partial in outcome.items():
            partials[number].append((unit, partial))

    def rescan(probe: Probe) -> Iterator[tuple[Unit, pa.Table]]:
        reader = _Readers(opener, [])
        for unit in units:
            yield from _pieces(reader, unit, list(probe.columns), True)

    out = []
    for number, probe in enumerate(probes):
        if number in results:
            out.append(results[number])
            continue
        ordered = sorted(partials[number], key=lambda item: (item[0].index, item[0].group))
        probe.rescan = rescan
        out.append(probe.result(ordered, from_footer[number]))
    return out


def _single(index: int, key: str, footer: Footer, group: int) -> Unit:
    return Unit(index, key, (group,), (footer.rows(group),))


def _runs(index: int, key: str, footer: Footer) -> list[Unit]:
    """The file's row groups as units: one each, or consecutive small ones together."""
    runs: list[Unit] = []
    groups: list[int] = []
    rows: list[int] = []
    for group in range(footer.parquet.num_row_groups):
        groups.append(group)
        rows.append(footer.rows(group))
        if len(groups) >= _RUN_GROUPS or sum(rows) >= _RUN_ROWS:
            runs.append(Unit(index, key, tuple(groups), tuple(rows)))
            groups, rows = [], []
    if groups:
        runs.append(Unit(index, key, tuple(groups), tuple(rows)))
    return runs


class _Readers:
    """One reader per file and worker thread: a pyarrow ParquetFile must not be shared between threads."""

    def __init__(self, opener: Opener, encoded: Sequence[str]) -> None:
        self.opener = opener
        self.encoded = encoded
        self.local = threading.local()

    def get(self, index: int) -> pq.ParquetFile:
        cache: dict[int, pq.ParquetFile] | None = getattr(self.local, "readers", None)
        if cache is None:
            cache = self.local.readers = {}
        if index not in cache:
            cache.clear()  # units come in file order: keep one open file per thread
            cache[index] = self.opener(index, self.encoded)
        return cache[index]


def _read(readers: _Readers, unit: Unit, columns: list[str], use_threads: bool) -> pa.Table:
    reader = readers.get(unit.index)
    if len(unit.groups) == 1:
        return reader.read_row_group(unit.group, columns=columns, use_threads=use_threads)
    return reader.read_row_groups(list(unit.groups), columns=columns, use_threads=use_threads)


_BATCH_ROWS = 262_144  # a larger row group is read in batches of this many rows (bounds memory per worker)


def _pieces(readers: _Readers, unit: Unit, columns: list[str], use_threads: bool) -> Iterator[tuple[Unit, pa.Table]]:
    """The unit's columns: in one table, or batch by batch when it is one large row group."""
    if len(unit.groups) > 1 or unit.rows[0] <= _BATCH_ROWS:
        yield unit, _read(readers, unit, columns, use_threads)
        return
    batches = readers.get(unit.index).iter_batches(
        batch_size=_BATCH_ROWS, row_groups=[unit.group], columns=columns, use_threads=use_threads
    )
    for batch in batches:
        yield Unit(unit.index, unit.key, unit.groups, (batch.num_rows,)), pa.Table.from_batches([batch])


def _read_unit(readers: _Readers, unit: Unit, probes: list[tuple[int, Probe]], use_threads: bool) -> dict[int, Any]:
    """Read the columns ``probes`` need from the unit's row groups once; each probe gives its partial outcome.

    ``use_threads``: no other unit is read at the same time, so Arrow decodes columns in parallel and the
    probes judge the table in parallel (they only read it).
    """
    columns = sorted({c for _, p in probes for c in p.columns})
    found: dict[int, list[Any]] = {number: [] for number, _ in probes}
    parallel = use_threads and len(probes) > 1 and workers() > 1
    try:
        for piece, table in _pieces(readers, unit, columns, use_threads):

            def judge(item: tuple[int, Probe], piece: Unit = piece, table: pa.Table = table) -> Any:
                try:
                    return item[1].data(table, piece)
                except (OSError, pa.ArrowException) as exc:
                    return ReadError(piece.group, short_error(exc))

            if parallel:  # the only unit being read: its probes in parallel
                with ThreadPoolExecutor(max_workers=workers()) as pool:
                    judged = list(pool.map(judge, probes))
            else:
                judged = [judge(item) for item in probes]
            for (number, _), partial in zip(probes, judged, strict=True):
                found[number].append(partial)
            del table
    except (OSError, pa.ArrowException):
        # Find which row group and columns are unreadable, so only the checks that need them fail.
        return {number: _read_alone(readers, unit, probe) for number, probe in probes}
    return {number: _merged(probe, found[number]) for number, probe in probes}


def _read_alone(readers: _Readers, unit: Unit, probe: Probe) -> Any:
    """One probe's partial outcome from its own columns, row group by row group (after a failed shared read)."""
    found = []
    for group, rows in zip(unit.groups, unit.rows, strict=True):
        try:
            for piece, table in _pieces(
                readers, Unit(unit.index, unit.key, (group,), (rows,)), list(probe.columns), False
            ):
                found.append(probe.data(table, piece))
        except (OSError, pa.ArrowException) as exc:
            return ReadError(group, short_error(exc))
    return _merged(probe, found)


def _merged(probe: Probe, partials: list[Any]) -> Any:
    errors = [p for p in partials if isinstance(p, ReadError)]
    return errors[0] if errors else probe.merge(partials)
