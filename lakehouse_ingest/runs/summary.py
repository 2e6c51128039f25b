"""The run's summary from its stream reports: the headline, the failure message, where each stream landed."""

from __future__ import annotations

from collections.abc import Sequence

from lakehouse_ingest.lake.keys import silver_table_key, stream_prefix
from lakehouse_ingest.runs.status import WHOLE_SOURCE, StreamReport, StreamStatus


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


def failure_message(reports: Sequence[StreamReport]) -> str:
    """Every failed stream with its reason, once each: the run's failure message (a reason that already starts with
    its stream's name, as a validation failure does, or a whole source's with its source's, as a connector error
    does, is not prefixed with it again)."""
    return "; ".join(_named(r) for r in failed(reports))


def _named(report: StreamReport) -> str:
    names = [f"{report.source}.{report.stream}: "] + ([f"{report.source}: "] if report.stream == WHOLE_SOURCE else [])
    return report.detail if report.detail.startswith(tuple(names)) else names[0] + report.detail


def locate(reports: Sequence[StreamReport], bronze_uri: str, silver_uri: str) -> None:
    """Fill each stream's bronze prefix and silver table location (the artifact's links)."""
    for report in reports:
        if report.stream != WHOLE_SOURCE:
            report.bronze = f"{bronze_uri.rstrip('/')}/{stream_prefix(report.source, report.stream)}/"
            report.silver = f"{silver_uri.rstrip('/')}/{silver_table_key(report.source, report.stream)}"


def links_markdown(reports: Sequence[StreamReport]) -> str:
    """A markdown table linking every stream to its bronze prefix and silver table."""
    lines = [
        f"| `{r.source}.{r.stream}` | {r.status} | [{r.bronze}]({r.bronze}) | [{r.silver}]({r.silver}) |"
        for r in reports
        if r.bronze
    ]
    if not lines:
        return ""
    head = ["# Bronze → silver", "", "| stream | status | bronze prefix | silver table |", "|---|---|---|---|"]
    return "\n".join(head + lines) + "\n"
