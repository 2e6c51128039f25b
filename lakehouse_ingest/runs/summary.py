"""The run's summary from its stream reports: the headline, the failure message, where each stream landed, and
what a failing batch's own report shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lakehouse_ingest.bronze.checks.results import CheckResult
from lakehouse_ingest.lake.keys import silver_table_key, stream_prefix
from lakehouse_ingest.runs.links import location_markdown
from lakehouse_ingest.runs.status import WHOLE_SOURCE, StreamReport, StreamStatus

_FAILED_AS = {
    StreamStatus.FAILED_VALIDATION: "failed validation",
    StreamStatus.HANDOFF_FAILED: "was not handed off",
    StreamStatus.ERROR: "could not be processed",
    StreamStatus.SYNC_FAILED: "sync failed",
    StreamStatus.PLAN_FAILED: "could not be planned",
    StreamStatus.STATE_COMMIT_FAILED: "connector state not committed",
}


def failed(reports: Sequence[StreamReport]) -> list[StreamReport]:
    """The reports that make the run fail."""
    return [r for r in reports if not r.status.done]


def headline(reports: Sequence[StreamReport]) -> str:
    """One line for the run: what was handed off, in batches, rows, files and bytes."""
    ok = [r for r in reports if r.status is StreamStatus.HANDED_OFF]
    return (
        f"{len(ok)}/{len(reports)} stream batch(es) validated and handed off; "
        f"{sum(r.rows for r in ok)} rows, {sum(r.files for r in ok)} files, {sum(r.bytes for r in ok)} bytes"
    )


def failed_check_line(check: CheckResult) -> str:
    """One failed check, as the run's message and logs name it (no stream prefix: the caller says which)."""
    where = f" in {check.file}" if check.file else ""
    return f"check '{check.name}' failed{where}: {check.detail}"


def failed_checks_detail(checks: Sequence[CheckResult]) -> str:
    """Every failed check of a batch, once each, in the order they ran."""
    return "; ".join(failed_check_line(c) for c in checks if not c.passed)


def failure_message(reports: Sequence[StreamReport]) -> str:
    """The run's failure message: every failed stream once, with every reason it has (each failed check once).

    ``2 of 5 stream batch(es) failed: faker.users failed validation: check 'min_records' failed: ...; check
    'accepted_values(gender)' failed in ...: ... | faker.purchases failed validation: ...``
    """
    bad = failed(reports)
    parts = [f"{r.name} {_FAILED_AS.get(r.status, r.status.value)}: {_unprefixed(r)}" for r in bad]
    return f"{len(bad)} of {len(reports)} stream batch(es) failed: " + " | ".join(parts)


def _unprefixed(report: StreamReport) -> str:
    """The report's detail without the stream's name in front (errors of the core often start with it)."""
    detail = report.detail or "no detail"
    for prefix in (f"{report.name}: ", f"{report.source}: "):
        if detail.startswith(prefix):
            return detail[len(prefix) :]
    return detail


def locate(reports: Sequence[StreamReport], bronze_uri: str, silver_uri: str) -> None:
    """Fill each stream's bronze prefix and silver table location (the artifact's links)."""
    for report in reports:
        if report.stream != WHOLE_SOURCE:
            report.bronze = f"{bronze_uri.rstrip('/')}/{stream_prefix(report.source, report.stream)}/"
            report.silver = f"{silver_uri.rstrip('/')}/{silver_table_key(report.source, report.stream)}"


def links_markdown(reports: Sequence[StreamReport], console: str | None) -> str:
    """A markdown table of every stream's bronze prefix and silver table: links into the S3 console when one is
    configured (``runs.links``), plain text otherwise (never a link the browser cannot open)."""
    lines = [
        f"| `{r.name}` | {r.status} | {location_markdown(r.bronze, console, folder=True)} "
        f"| {location_markdown(r.silver, console, folder=True)} |"
        for r in reports
        if r.bronze
    ]
    if not lines:
        return ""
    head = ["# Bronze → silver", "", "| stream | status | bronze prefix | silver table |", "|---|---|---|---|"]
    foot = [] if console else ["", "Plain-text locations: set `LAKE_CONSOLE_URL` to link S3 locations to a console."]
    return "\n".join(head + lines + foot) + "\n"


def check_rows(checks: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """A failing batch's checks as table rows (``check``, ``passed``, ``detail``, ``file``), failed ones first."""
    ordered = [c for c in checks if not c.passed] + [c for c in checks if c.passed]
    return [{"check": c.name, "passed": c.passed, "detail": c.detail, "file": c.file or ""} for c in ordered]
