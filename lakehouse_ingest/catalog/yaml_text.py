"""YAML text read for the catalog and for declarative manifests: a syntax error becomes one ConfigError line
that names the document and the line, never a parser traceback."""

from __future__ import annotations

from typing import Any

import yaml

from lakehouse_ingest.errors import ConfigError

__all__ = ["parse_yaml"]


def parse_yaml(text: str, what: str) -> Any:
    """``text`` parsed; ``what`` names the document in the error (e.g. ``catalog catalog.yaml``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} is not valid YAML{at}") from None
