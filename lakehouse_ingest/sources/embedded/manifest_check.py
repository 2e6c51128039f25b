"""Check a declarative manifest with the Airbyte CDK that will run it; prints one JSON line.

Run by the runner's own Python (``<venv>/bin/python manifest_check.py MANIFEST.json``), never imported by this
project: it needs the connector's ``airbyte_cdk``. The CDK resolves the manifest's references, propagates
component types and validates it against its ``declarative_component_schema.yaml`` (plus its own rules: at least
one stream, a manifest version it supports), exactly as ``check``/``read`` would. Prints
``{"spec": <connection_specification>}`` or ``{"error": "<where>: <the CDK's reason>"}``.
"""

from __future__ import annotations

import difflib
import json
import logging
import pkgutil
import sys
from pathlib import Path
from typing import Any


def _component_types() -> list[str]:
    import yaml

    raw = pkgutil.get_data("airbyte_cdk", "sources/declarative/declarative_component_schema.yaml") or b""
    schema = yaml.safe_load(raw) or {}
    types: set[str] = set()
    for definition in (schema.get("definitions") or {}).values():
        enum = ((definition.get("properties") or {}).get("type") or {}).get("enum") or []
        types.update(str(t) for t in enum)
    return sorted(types)


def _describe(error: BaseException) -> str:
    """The schema violation behind the CDK's generic message: where in the manifest, and why."""
    from jsonschema.exceptions import ValidationError

    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    violation = next((e for e in reversed(chain) if isinstance(e, ValidationError) and e.validator), None)
    if violation is None:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = ".".join(str(p) for p in violation.absolute_path) or "manifest"
    reason = violation.message
    instance: Any = violation.instance
    if isinstance(instance, str) and violation.absolute_path and violation.absolute_path[-1] == "type":
        close = difflib.get_close_matches(instance, _component_types(), n=1)
        if close:
            reason += f" (did you mean {close[0]!r}?)"
    return f"{where}: {reason}"


def main() -> int:
    manifest = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    try:
        from airbyte_cdk.sources.declarative.manifest_declarative_source import ManifestDeclarativeSource

        source = ManifestDeclarativeSource(source_config=manifest)
        spec = source.spec(logging.getLogger("manifest_check")).connectionSpecification
    except Exception as error:  # every reason becomes the one line the user reads
        print(json.dumps({"error": _describe(error)}))
        return 0
    print(json.dumps({"spec": spec}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
