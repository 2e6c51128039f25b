"""The storage failing under delta-rs while a batch is applied: one retryable line, not a multi-line OSError."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_ingest.errors import StorageError, is_transient, one_line
from lakehouse_ingest.silver import merge

# What delta-rs raised when a commit's PUT timed out (tests/test_faults_overlap.py, a loaded machine).
TIMED_OUT = (
    "Generic S3 error\n          \x1b[31m↳\x1b[0m Error performing PUT http://127.0.0.1:33721/silver/shop/users/"
    "_delta_log/00000000000000000000.json in 10.0s - HTTP error\n           \x1b[31m↳\x1b[0m error sending request\n"
    "            \x1b[31m↳\x1b[0m operation timed out\n"
)


def test_one_line_joins_the_causes_without_colour_codes() -> None:
    assert one_line(TIMED_OUT) == (
        "Generic S3 error: Error performing PUT http://127.0.0.1:33721/silver/shop/users/_delta_log/"
        "00000000000000000000.json in 10.0s - HTTP error: error sending request: operation timed out"
    )


def test_a_storage_failure_under_delta_rs_is_a_retryable_one_line_storage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(*_: Any) -> None:
        raise OSError(TIMED_OUT)

    monkeypatch.setattr(merge, "_apply", failing)
    manifest = SimpleNamespace(source="shop", stream="users", sync_id=7)
    with pytest.raises(StorageError) as raised:
        merge.apply_manifest(None, None, manifest)  # type: ignore[arg-type]
    assert str(raised.value) == f"shop.users sync 7: {one_line(TIMED_OUT)}"
    assert is_transient(raised.value)
