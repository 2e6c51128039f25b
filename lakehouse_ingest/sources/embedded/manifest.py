"""Declarative (low-code) manifests as connectors: ``connector: {manifest: path/to/manifest.yaml}``.

The manifest is run by ``airbyte-source-declarative-manifest`` (installed like any PyPI connector), which reads it
from the config under ``__injected_declarative_manifest``, as Airbyte's platform passes it. Before anything runs,
the manifest is read, parsed, and checked by the runner's own CDK against the declarative component schema
(``manifest_check``); its ``spec.connection_specification`` is what the source's config is validated against.
Every problem is bad input (``ConfigError``): one line naming the file, where in it, and the CDK's reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from lakehouse_ingest.catalog.yaml_text import parse_yaml
from lakehouse_ingest.errors import ConfigError, ConnectorError

INJECTED_KEY = "__injected_declarative_manifest"
_CHECKER = Path(__file__).with_name("manifest_check.py")


def load_manifest(path: Path, source: str) -> dict[str, Any]:
    """The manifest at ``path`` as a mapping (YAML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"source {source!r}: cannot read manifest {path}: {exc.strerror or exc}") from None
    manifest = parse_yaml(text, f"source {source!r}: manifest {path}")
    if not isinstance(manifest, dict):
        raise ConfigError(f"source {source!r}: manifest {path} must be a mapping (version, streams, spec, ...)")
    if not isinstance(manifest.get("spec"), dict):
        raise ConfigError(
            f"source {source!r}: manifest {path} has no 'spec' (its connection_specification validates the config)"
        )
    return manifest


def check_manifest(python: Path, manifest: dict[str, Any], path: Path, source: str) -> dict[str, Any]:
    """Check ``manifest`` with the runner's CDK (``python`` is its virtualenv's); returns the connector spec
    (``{"connectionSpecification": ...}``) the config is validated against."""
    from lakehouse_ingest.sources.embedded.connector import _private_files

    with _private_files(manifest=manifest) as files:
        try:
            result = subprocess.run(
                [str(python), str(_CHECKER), str(files["manifest"])],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ConnectorError(f"{source}: checking manifest {path} took over 300 s") from None
    answer = _last_json(result.stdout)
    if answer is None:
        tail = " | ".join(result.stderr.strip().splitlines()[-2:]) or f"exit {result.returncode}"
        raise ConnectorError(f"{source}: could not check manifest {path}: {tail}")
    if "error" in answer:
        raise ConfigError(f"source {source!r}: invalid manifest {path}: {answer['error']}")
    return {"connectionSpecification": answer.get("spec") or {}}


def inject(config: dict[str, Any], manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The config the runner receives: the source's config with the manifest inlined."""
    return config if manifest is None else {**config, INJECTED_KEY: manifest}


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
