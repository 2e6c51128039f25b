"""The command lines answer ``--help`` and refuse bad input without loading what they do not need.

Start-up time is measured in ``bench/cli_startup.py``, not here (a timing assertion would be flaky on a loaded
machine); these tests pin its cause instead: which heavy packages each answer imports, read from the real entry
point's ``-X importtime`` report. Prefect (about a second) loads only when a flow runs; ``--help`` and argument
errors need nothing beyond ``argparse``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What --help and argparse's refusals must not load: everything heavy the core and the flows use.
NOT_FOR_ARGUMENTS = {"prefect", "pyarrow", "deltalake", "httpx", "jsonschema", "boto3", "pydantic", "yaml"}


def imported(args: list[str], cwd: Path, code: int) -> tuple[set[str], str]:
    """Run ``python -X importtime *args`` as a user would; the top-level packages it imported, and its stderr
    without the import report (the process must exit with ``code``)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BRONZE_URI": str(cwd / "lake" / "bronze"),
        "SILVER_URI": str(cwd / "lake" / "silver"),
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    stderr = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
    assert done.returncode == code, stderr
    assert report, "no -X importtime report"
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in report}, stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["-m", "flows.bronze", "--help"], 0),
        (["-m", "flows.silver", "--help"], 0),
        (["-m", "flows.bronze", "--sauce", "x"], 2),
        (["-m", "flows.silver", "--manifest"], 2),
        (["-m", "deployments", "--help"], 0),
        (["-m", "deployments", "lsit"], 2),
    ],
    ids=[
        "bronze-help",
        "silver-help",
        "bronze-unknown-option",
        "silver-missing-value",
        "deployments-help",
        "deployments-bad-command",
    ],
)
def test_help_and_argument_errors_load_nothing_heavy(tmp_path: Path, args: list[str], code: int) -> None:
    loaded, _ = imported(args, tmp_path, code)
    assert "argparse" in loaded
    assert not loaded & NOT_FOR_ARGUMENTS, sorted(loaded & NOT_FOR_ARGUMENTS)
    assert list(tmp_path.iterdir()) == []


# What a refusal of the catalog, a URI or a source name, and a dry run, must not load: they read the catalog
# (pydantic, yaml) and check the lake roots, nothing more: pyarrow waits for a file to read, Prefect and the
# connectors' machinery for a run.
NOT_FOR_REFUSALS = {"prefect", "pyarrow", "deltalake", "httpx", "jsonschema", "boto3"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-m", "flows.bronze", "--source", "no-such"], 2, "error: unknown source 'no-such'; the catalog has: faker"),
        (["-m", "flows.bronze", "--bronze", "ftp://x"], 2, "error: unsupported storage URI 'ftp://x'"),
        (["-m", "flows.bronze", "--dry-run"], 0, ""),
        (["-m", "flows.bronze", "--janitor", "--dry-run"], 0, "janitor: "),
        (["-m", "flows.bronze", "--janitor", "--source", "no-such"], 2, "error: unknown source 'no-such'"),
        (["-m", "flows.silver", "--source", "no-such"], 2, "error: unknown source 'no-such'; the catalog has: faker"),
        (["-m", "deployments", "list", "--catalog", "missing.yaml"], 2, "error: cannot read catalog missing.yaml"),
    ],
    ids=[
        "bronze-unknown-source",
        "bronze-bad-uri",
        "bronze-dry-run",
        "bronze-janitor-dry-run",
        "bronze-janitor-unknown-source",
        "silver-unknown-source",
        "deployments-bad-catalog",
    ],
)
def test_refusals_and_dry_runs_load_no_prefect(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    loaded, stderr = imported(args, tmp_path, code)
    assert not loaded & NOT_FOR_REFUSALS, sorted(loaded & NOT_FOR_REFUSALS)
    assert stderr.startswith(message) and len(stderr.splitlines()) == (1 if message else 0), stderr
    assert list(tmp_path.iterdir()) == []
