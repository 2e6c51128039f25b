"""``python -m deployments.provision``: create or update, on the Airbyte server, what the catalog's platform sources
need (S3 destination into bronze, source, connection). Plain Python: no Prefect.

    python -m deployments.provision [--catalog PATH] [--bronze s3://bucket[/prefix]] [--source NAME ...]
                                    [--dry-run] [--update-secrets]

Prints the plan (create / update / unchanged per object, with the changed fields; secrets as ``***``), then
applies it unless ``--dry-run``. Exit codes: 0 done (or nothing to do), 1 the Airbyte server failed a request,
2 bad input (catalog, settings, or a declaration the server contradicts; nothing has been written).
Every error is one line on stderr, with known secret values scrubbed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from lakehouse_ingest.catalog.sources import load_catalog
from lakehouse_ingest.errors import ConfigError, IngestError
from lakehouse_ingest.provisioning.apply import Provisioner
from lakehouse_ingest.provisioning.plan import ProvisionPlan
from lakehouse_ingest.provisioning.render import render_plan, scrub, summary
from lakehouse_ingest.provisioning.target import S3Target
from lakehouse_ingest.sources.airbyte.client import AirbyteClient
from lakehouse_ingest.sources.airbyte.settings import AirbyteSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.provision",
        description="Create or update the Airbyte S3 destination and connections of the catalog's platform sources.",
    )
    parser.add_argument("--catalog", help="catalog YAML (default: $CATALOG, else the built-in one)")
    parser.add_argument("--bronze", help="bronze root, s3://bucket[/prefix] (default: $BRONZE_URI)")
    parser.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    parser.add_argument(
        "--update-secrets",
        action="store_true",
        help="send secrets again even where Airbyte's masked copy cannot show a difference (after a key rotation)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    client: AirbyteClient | None = None,
) -> int:
    """Run the command; returns the exit code (``client`` and ``env`` for tests)."""
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its one-line usage error
        return 0 if exc.code == 0 else 2
    secrets: list[str] = []

    def say(line: str) -> None:
        print(scrub(line, secrets), file=out, flush=True)

    own_client = client is None
    try:
        catalog = load_catalog(args.catalog or env.get("CATALOG") or None, env)
        selected = catalog.select(args.source)
        provisioned = [s for s in selected if s.airbyte is not None]
        for source in selected:
            if source.airbyte is None and source.connector is None:
                say(f"{source.name}: skipped (no 'airbyte:' block: the connection is managed outside this catalog)")
        if not provisioned:
            raise ConfigError("no source of the catalog has an 'airbyte:' block: nothing to provision")
        target = S3Target.from_env(args.bronze or env.get("BRONZE_URI") or "./lakehouse/bronze", env)
        secrets += [s for s in (target.access_key_id, target.secret_access_key) if s]
        if target.local_endpoint:
            say(
                f"note: the S3 endpoint {target.endpoint} is what Airbyte connects to; inside Airbyte's cluster "
                "localhost is not this machine (set AIRBYTE_S3_ENDPOINT to the address Airbyte reaches)"
            )
        if client is None:
            client = AirbyteSettings.from_env(env).client()
        provisioner = Provisioner(client, target, update_secrets=args.update_secrets)
        plans: list[ProvisionPlan] = provisioner.plan(provisioned)
        for plan in plans:
            secrets += plan.secrets
        for plan in plans:
            for line in render_plan(plan):
                say(line)
        if args.dry_run:
            say(f"plan: {summary(plans)} (dry run: nothing written)")
            return 0
        writes = sum(provisioner.apply(plan, say) for plan in plans)
        say(f"done: {writes} written" if writes else "done: nothing to change")
        return 0
    except ConfigError as exc:
        print(f"error: {_one_line(scrub(str(exc), secrets))}", file=err, flush=True)
        return 2
    except IngestError as exc:
        print(f"error: {_one_line(scrub(str(exc), secrets))}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=err, flush=True)
        return 130
    finally:
        if own_client and client is not None:
            client.close()


def _one_line(text: str) -> str:
    """Server bodies quoted in a message may hold line breaks: one error, one line."""
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
