"""Benchmark: how fast the command lines answer ``--help`` and refuse bad input (no flow runs).

Each round runs every command below once, one after the other as fresh processes (the order rotates from round
to round so a change of machine load is spread over all of them), and records its wall time and CPU time (user +
system of the child). A warm-up round (not counted) fills the page cache and the bytecode caches first. Beside our
commands, two baselines: a bare interpreter (``python -c pass``) and ``python -c 'import prefect'`` (what a
command costs that imports Prefect). Prints, per command, the median and best wall time, the median CPU time,
the ratios of the median wall time to both baselines, and the heavy packages the command imported (from one
extra run with ``-X importtime``, not timed). Target: ``--help`` <= 0.8 s. The machine's load average is
printed before and after: on a loaded machine wall times stretch, CPU times much less.

Every command runs in an empty temporary directory, its lake roots (``BRONZE_URI``, ``SILVER_URI``) there too,
with the built-in catalog; each command's exit code is checked (0 ok, 2 bad input).

    python bench/cli_startup.py [--rounds 7] [--only bronze,silver,deployments]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELP_TARGET_SECONDS = 0.8
# The packages that make a command slow to start; the -X importtime run lists the ones each command loaded.
HEAVY = ("prefect", "pyarrow", "deltalake", "httpx", "jsonschema", "boto3", "pydantic", "pydantic_settings", "yaml")


@dataclass
class Command:
    """One process to time: its label, its arguments after ``python`` and the exit code it must end with."""

    label: str
    argv: list[str]
    code: int = 0
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    heavy: list[str] = field(default_factory=list)


def commands() -> list[Command]:
    bronze, silver, deployments = ["-m", "flows.bronze"], ["-m", "flows.silver"], ["-m", "deployments"]
    return [
        Command("python -c pass", ["-c", "pass"]),
        Command("python -c 'import prefect'", ["-c", "import prefect"]),
        Command("bronze --help", [*bronze, "--help"]),
        Command("bronze --sauce (argparse error)", [*bronze, "--sauce"], 2),
        Command("bronze --source no-such (unknown)", [*bronze, "--source", "no-such"], 2),
        Command("bronze --bronze ftp://x (bad URI)", [*bronze, "--bronze", "ftp://x"], 2),
        Command("bronze --dry-run", [*bronze, "--dry-run"]),
        Command("silver --help", [*silver, "--help"]),
        Command("silver --source no-such (unknown)", [*silver, "--source", "no-such"], 2),
        Command("deployments --help", [*deployments, "--help"]),
        Command("deployments list --catalog missing", [*deployments, "list", "--catalog", "missing.yaml"], 2),
    ]


def run(command: Command, work: Path, env: dict[str, str], importtime: bool = False) -> tuple[float, float, str]:
    """One run of ``command``: its wall time, its CPU time and its stderr (checked to exit as expected)."""
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), *command.argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != command.code:
        raise SystemExit(f"{command.label}: exit {done.returncode}, expected {command.code}:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def heavy_imports(stderr: str) -> list[str]:
    """The HEAVY packages an ``-X importtime`` run's stderr shows imported."""
    loaded = {
        line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")
    }
    return [name for name in HEAVY if name in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--only", help="comma-separated prefixes of the command labels to time (the baselines always run)"
    )
    args = parser.parse_args()
    chosen = commands()
    if args.only:
        prefixes = tuple(args.only.split(","))
        chosen = [c for c in chosen if c.label.startswith(("python ", *prefixes))]
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in {"CATALOG", "BRONZE_URI", "SILVER_URI"}}
        env |= {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "BRONZE_URI": str(work / "lake" / "bronze"),
            "SILVER_URI": str(work / "lake" / "silver"),
        }
        print(f"python {sys.version.split()[0]} ({sys.executable}); code under test: {ROOT}")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
        for command in chosen:  # warm-up (page cache, bytecode caches), and what each command imports
            command.heavy = heavy_imports(run(command, work, env, importtime=True)[2])
            run(command, work, env)
        for round_ in range(args.rounds):
            shift = round_ % len(chosen)
            for command in chosen[shift:] + chosen[:shift]:
                wall, cpu, _ = run(command, work, env)
                command.wall.append(wall)
                command.cpu.append(cpu)
        print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    bare, prefect = (statistics.median(c.wall) for c in chosen[:2])
    width = max(len(c.label) for c in chosen)
    print(
        f"\n{'command':<{width}}  {'median':>7}  {'best':>7}  {'CPU':>7}  {'x bare':>6}  {'x prefect':>9}  "
        f"heavy imports ({args.rounds} rounds; seconds)"
    )
    for command in chosen:
        median = statistics.median(command.wall)
        target = ""
        if command.label.endswith("--help"):
            target = f"  target <= {HELP_TARGET_SECONDS} s: {'met' if median <= HELP_TARGET_SECONDS else 'MISSED'}"
        print(
            f"{command.label:<{width}}  {median:7.3f}  {min(command.wall):7.3f}  {statistics.median(command.cpu):7.3f}"
            f"  {median / bare:6.1f}  {median / prefect:9.2f}  {', '.join(command.heavy) or '-'}{target}"
        )


if __name__ == "__main__":
    main()
