"""Validate Airbyte API traffic against the official OpenAPI documents (airbyte-platform tag v2.0.0).

The documents live outside the repository, in ``<repo>/../shared/airbyte-openapi`` (see the README there):

- ``config.yaml``: the Config API, served under ``/api/v1`` (spec paths ``/v1/...``; OpenAPI 3.0),
- ``api.yaml``: the public API, served under ``/api/public/v1`` (spec paths ``/...``; OpenAPI 3.1),
- ``api-problems.yaml``: the problem+json bodies the public API answers errors with (OpenAPI 3.0).

:class:`OpenApiChecker` maps a concrete request path to its (possibly templated) spec path, then checks the
query and path parameters, the request body and the response body with ``jsonschema``. ``$ref`` resolves within
each document; OpenAPI 3.0 ``nullable`` is turned into a JSON-schema null option. Errors come back as strings.

The spec as written differs from what servers do in a few known places; :data:`QUIRKS` lists the patches applied.
Error statuses the spec does not document are checked against what the servers' exception handlers serialise:
``KnownExceptionInfo`` on the Config API and a known problem type (status/type/title constants) on the public API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
import yaml

__all__ = [
    "CONFIG_PREFIX",
    "PUBLIC_PREFIX",
    "QUIRKS",
    "OpenApiChecker",
    "SpecNotFoundError",
    "default_checker",
    "find_spec_dir",
]

CONFIG_PREFIX = "/api/v1"
PUBLIC_PREFIX = "/api/public/v1"
SPEC_FILES = ("config.yaml", "api.yaml", "api-problems.yaml")

# Patches applied to the documents before validating (the spec as written vs. the servers).
QUIRKS = (
    "AirbyteStream.required lists 'json_schema' but the property is 'jsonSchema': required name corrected",
    "JobStatus (config) and JobStatusEnum (public) gain 'queued' (HEAD / Airbyte Cloud return it)",
    "ApplicationTokenRequestWithGrant: property 'grant-type' renamed to the required 'grant_type'",
    "POST /v1/workspaces/list (v0.50 … v1.6, removed in v1.7) re-added: no request body, 200 WorkspaceReadList",
    "NotFoundKnownExceptionInfo / KnownExceptionInfo: 'message' optional (HEAD answers only {errorId})",
    "ConnectionStatus / ConnectionStatusEnum gain 'locked' (listed by the contract for current servers)",
    "format names are compared case-insensitively ('UUID' in api.yaml is checked as 'uuid')",
    "undocumented error statuses: Config API bodies must fit KnownExceptionInfo (what KnownExceptionHandler "
    "serialises, e.g. 409 on connections/sync, 500); public API bodies must be a known problem type",
)

_JSON_TYPES = ("application/json", "application/problem+json")
_FORM_TYPE = "application/x-www-form-urlencoded"
# Status codes a proxy in front of Airbyte may answer with a non-JSON body (nginx basic auth, gateways).
_PROXY_STATUSES = frozenset({401, 502, 503, 504})
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class SpecNotFoundError(FileNotFoundError):
    """The OpenAPI documents are not where the tests expect them."""


def find_spec_dir(repo_root: Path | str | None = None) -> Path:
    """The official spec files: the copy vendored in ``tests/airbyte-openapi`` (so a bare clone tests the
    same), else ``<repo_root>/../shared/airbyte-openapi``; raises :class:`SpecNotFoundError` when missing."""
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    candidates = [root / "tests" / "airbyte-openapi", root.parent / "shared" / "airbyte-openapi"]
    for spec_dir in candidates:
        if all((spec_dir / name).is_file() for name in SPEC_FILES):
            return spec_dir
    raise SpecNotFoundError(
        f"Airbyte OpenAPI spec files {list(SPEC_FILES)} not found in {' or '.join(map(str, candidates))} "
        "(see tests/airbyte-openapi/README.md)"
    )


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML loader that keeps timestamps as strings (examples hold dates; JSON has no datetime)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


# -- document preparation ----------------------------------------------------------------------------------------
def _convert_nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → allow null; lower-case ``format`` names."""
    if isinstance(node, list):
        return [_convert_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert_nullable(value) for key, value in node.items()}
    if isinstance(out.get("format"), str):
        out["format"] = out["format"].lower()
    if out.pop("nullable", False) is True:
        if "type" in out and "$ref" not in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"] if "null" not in types else types
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _patch_config(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    stream = schemas["AirbyteStream"]
    stream["required"] = ["jsonSchema" if name == "json_schema" else name for name in stream["required"]]
    _add_enum(schemas.get("JobStatus"), "queued", after="pending")
    _add_enum(schemas.get("JobStatusEnum"), "queued", after="pending")
    _add_enum(schemas.get("ConnectionStatus"), "locked")
    _add_enum(schemas.get("ConnectionStatusEnum"), "locked")
    _fix_grant_type(schemas.get("ApplicationTokenRequestWithGrant"))
    for name in ("NotFoundKnownExceptionInfo", "KnownExceptionInfo"):
        required = [item for item in schemas[name].get("required", []) if item != "message"]
        if required:
            schemas[name]["required"] = required
        else:
            schemas[name].pop("required", None)
    doc["paths"].setdefault(
        "/v1/workspaces/list",
        {
            "post": {
                "operationId": "listWorkspaces",
                "summary": "List all workspaces registered in the current Airbyte deployment (removed in v1.7.0)",
                "responses": {
                    "200": {
                        "description": "Successful operation",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WorkspaceReadList"}}},
                    }
                },
            }
        },
    )


def _patch_public(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    _add_enum(schemas.get("JobStatusEnum"), "queued", after="pending")
    _add_enum(schemas.get("ConnectionStatusEnum"), "locked")
    _fix_grant_type(schemas.get("ApplicationTokenRequestWithGrant"))


def _add_enum(schema: dict[str, Any] | None, value: str, after: str | None = None) -> None:
    if schema is None or value in schema["enum"]:
        return
    values = list(schema["enum"])
    values.insert(values.index(after) + 1 if after in values else len(values), value)
    schema["enum"] = values


def _fix_grant_type(schema: dict[str, Any] | None) -> None:
    if schema is not None and "grant-type" in schema.get("properties", {}):
        schema["properties"]["grant_type"] = schema["properties"].pop("grant-type")


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


# -- format checks -----------------------------------------------------------------------------------------------
def _format_checker() -> jsonschema.FormatChecker:
    """Every format jsonschema knows (Draft 7's own list lacks uuid), plus int32/int64 ranges."""
    checker = jsonschema.FormatChecker()
    for name, (low, high) in _INT_RANGES.items():

        def check(instance: object, low: int = low, high: int = high) -> bool:
            return not isinstance(instance, int) or isinstance(instance, bool) or low <= instance <= high

        checker.checks(name)(check)
    return checker


# -- the checker -------------------------------------------------------------------------------------------------
@dataclass
class _Api:
    name: str
    doc: dict[str, Any]
    uri: str
    validator_cls: type[jsonschema.protocols.Validator]
    routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        literal, templated = [], []
        for template in self.doc["paths"]:
            regex = re.compile("^" + re.sub(r"\\\{[^}/]+\\\}", "([^/]+)", re.escape(template)) + "$")
            (templated if "{" in template else literal).append((regex, template))
        # Literal paths win over templated ones (/jobs/list before /jobs/{jobId}); fewer parameters first.
        templated.sort(key=lambda item: item[1].count("{"))
        self.routes = literal + templated

    def match(self, spec_path: str) -> tuple[str, dict[str, str]] | None:
        for regex, template in self.routes:
            found = regex.match(spec_path)
            if found:
                names = re.findall(r"\{([^}/]+)\}", template)
                return template, dict(zip(names, found.groups(), strict=True))
        return None


class OpenApiChecker:
    """Checks requests and responses of the Config API and the public API against the spec documents."""

    def __init__(self, spec_dir: Path | str | None = None) -> None:
        self.spec_dir = Path(spec_dir) if spec_dir is not None else find_spec_dir()
        missing = [name for name in SPEC_FILES if not (self.spec_dir / name).is_file()]
        if missing:
            raise SpecNotFoundError(f"Airbyte OpenAPI spec files {missing} not found in {self.spec_dir}")
        config = _load(self.spec_dir / "config.yaml")
        public = _load(self.spec_dir / "api.yaml")
        problems = _load(self.spec_dir / "api-problems.yaml")
        _patch_config(config)
        _patch_public(public)
        config, public, problems = (_convert_nullable(doc) for doc in (config, public, problems))
        draft7, draft2020 = referencing.jsonschema.DRAFT7, referencing.jsonschema.DRAFT202012
        self._config = _Api("config", config, "urn:airbyte:config", jsonschema.Draft7Validator)
        self._public = _Api("public", public, "urn:airbyte:public", jsonschema.Draft202012Validator)
        self._problems_uri = "urn:airbyte:problems"
        self._problems_doc = problems
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resources(
            [
                (self._config.uri, referencing.Resource(contents=config, specification=draft7)),
                (self._public.uri, referencing.Resource(contents=public, specification=draft2020)),
                (self._problems_uri, referencing.Resource(contents=problems, specification=draft7)),
            ]
        )
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        self._format_checker = _format_checker()
        self._problem_types = self._collect_problems(problems)

    # -- public entry points -------------------------------------------------------------------------------------
    def check(
        self,
        method: str,
        path: str,
        request_json: Any,
        status: int,
        response_json: Any,
        *,
        query: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Request and response problems of one JSON exchange (empty when both fit the spec)."""
        return [
            *self.check_request(method, path, body=request_json, query=query),
            *self.check_response(method, path, status, response_json),
        ]

    def check_request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str | None = "application/json",
    ) -> list[str]:
        """Problems with a request: unknown path or method, bad parameters, a body that misses its schema.

        ``body`` is the parsed JSON (or the form fields as a dict for form-encoded bodies), None when absent.
        ``query`` maps names to a value or a list of values (repeated parameters).
        """
        found = self._operation(method, path)
        if isinstance(found, str):
            return [found]
        api, template, params, operation, path_item = found
        errors = self._check_parameters(api, template, operation, path_item, params, query or {})
        request_body = operation.get("requestBody")
        if request_body is None:
            if body not in (None, {}, b"", ""):
                errors.append(f"{method.upper()} {template}: the operation takes no request body")
            return errors
        if body is None:
            if request_body.get("required"):
                errors.append(f"{method.upper()} {template}: request body is required")
            return errors
        media = _media_type(content_type)
        content = request_body.get("content", {})
        if media not in content:
            return [*errors, f"{method.upper()} {template}: request content type {media!r} not in {sorted(content)}"]
        schema_ptr = _pointer("paths", template, method.lower(), "requestBody", "content", media, "schema")
        if "schema" in content[media]:
            errors += [f"request: {msg}" for msg in self._validate(api.uri, schema_ptr, api.validator_cls, body)]
        return errors

    def check_response(
        self,
        method: str,
        path: str,
        status: int,
        body: Any,
        *,
        content_type: str | None = "application/json",
    ) -> list[str]:
        """Problems with a response: undocumented success status, wrong content type, body not fitting its schema.

        ``body`` is the parsed JSON for JSON content types, the raw text otherwise.
        """
        found = self._operation(method, path)
        if isinstance(found, str):
            # An unknown path or method answered 404/405 is what a server does (check_request reports the call).
            return [] if status in (404, 405) else [found]
        api, template, _params, operation, _path_item = found
        where = f"{method.upper()} {template} -> {status}"
        media = _media_type(content_type)
        responses = operation.get("responses", {})
        key = next((k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None)
        if key is None:
            if 200 <= status < 400:
                return [f"{where}: status not documented (documented: {sorted(responses)})"]
            return self._check_undocumented_error(api, where, status, body, media)
        response_ptr = _pointer("paths", template, method.lower(), "responses", key)
        spec_response = responses[key]
        if "$ref" in spec_response:  # a components/responses entry
            response_ptr = spec_response["$ref"]
            spec_response = self._resolve(api.doc, response_ptr)
        content = spec_response.get("content")
        if not content:
            return []  # documented without a body schema: the spec does not constrain the body
        if media not in content and media == "application/problem+json" and "application/json" in content:
            media = "application/json"
        if media not in content:
            return [f"{where}: response content type {media!r} not in {sorted(content)}"]
        if "schema" not in content[media]:
            return []
        schema_ptr = response_ptr + "/content/" + media.replace("~", "~0").replace("/", "~1") + "/schema"
        return [f"{where}: {msg}" for msg in self._validate(api.uri, schema_ptr, api.validator_cls, body)]

    def operation_id(self, method: str, path: str) -> str | None:
        """The spec's operationId for a concrete request, or None when the path is unknown."""
        found = self._operation(method, path)
        return None if isinstance(found, str) else found[3].get("operationId")

    def validate_schema(self, api: str, schema_name: str, instance: Any) -> list[str]:
        """Validate ``instance`` against ``components/schemas/<schema_name>`` of "config", "public" or "problems"."""
        uri, cls = {
            "config": (self._config.uri, self._config.validator_cls),
            "public": (self._public.uri, self._public.validator_cls),
            "problems": (self._problems_uri, jsonschema.Draft7Validator),
        }[api]
        return self._validate(uri, _pointer("components", "schemas", schema_name), cls, instance)

    # -- internals -----------------------------------------------------------------------------------------------
    def _operation(
        self, method: str, path: str
    ) -> str | tuple[_Api, str, dict[str, str], dict[str, Any], dict[str, Any]]:
        path = path.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        if path == PUBLIC_PREFIX or path.startswith(PUBLIC_PREFIX + "/"):
            api, spec_path = self._public, path[len(PUBLIC_PREFIX) :] or "/"
        elif path.startswith(CONFIG_PREFIX + "/"):
            api, spec_path = self._config, "/v1" + path[len(CONFIG_PREFIX) :]
        else:
            return f"{method.upper()} {path}: not under {CONFIG_PREFIX} or {PUBLIC_PREFIX}"
        matched = api.match(spec_path)
        if matched is None:
            return f"{method.upper()} {path}: path not in the {api.name} API spec"
        template, params = matched
        path_item = api.doc["paths"][template]
        operation = path_item.get(method.lower())
        if not isinstance(operation, dict):
            methods = sorted(m.upper() for m in path_item if m in {"get", "post", "put", "patch", "delete"})
            return f"{method.upper()} {template}: method not in the {api.name} API spec (has {methods})"
        return api, template, params, operation, path_item

    def _check_parameters(
        self,
        api: _Api,
        template: str,
        operation: dict[str, Any],
        path_item: dict[str, Any],
        path_params: dict[str, str],
        query: Mapping[str, Any],
    ) -> list[str]:
        declared: dict[tuple[str, str], dict[str, Any]] = {}
        for param in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
            if "$ref" in param:
                param = self._resolve(api.doc, param["$ref"])
            declared[(param["in"], param["name"])] = param
        errors: list[str] = []
        for name in query:
            if ("query", name) not in declared:
                errors.append(f"{template}: unknown query parameter {name!r}")
        for (where, name), param in declared.items():
            if where == "path":
                raw: Any = path_params.get(name)
            elif where == "query":
                raw = query.get(name)
            else:
                continue  # headers and cookies are not checked
            if raw is None or raw == []:
                if param.get("required"):
                    errors.append(f"{template}: required {where} parameter {name!r} missing")
                continue
            schema = param.get("schema", {})
            if "$ref" in schema:
                schema = self._resolve(api.doc, schema["$ref"])
            value, problem = _coerce_param(raw, schema)
            if problem:
                errors.append(f"{template}: {where} parameter {name!r}: {problem}")
                continue
            # Parameter schemas may $ref components: validate through a pointer into the document.
            pointer = self._param_pointer(api, template, operation, path_item, where, name)
            errors += [
                f"{template}: {where} parameter {name!r}: {msg}"
                for msg in self._validate(api.uri, pointer, api.validator_cls, value)
            ]
        return errors

    def _param_pointer(
        self,
        api: _Api,
        template: str,
        operation: dict[str, Any],
        path_item: dict[str, Any],
        where: str,
        name: str,
    ) -> str:
        method = next(m for m, op in path_item.items() if op is operation)
        for owner, parts in ((operation, ("paths", template, method)), (path_item, ("paths", template))):
            for index, param in enumerate(owner.get("parameters", [])):
                if "$ref" in param:
                    ref = param["$ref"]
                    param = self._resolve(api.doc, ref)
                    if param["in"] == where and param["name"] == name:
                        return ref + "/schema"
                elif param["in"] == where and param["name"] == name:
                    return _pointer(*parts, "parameters", str(index), "schema")
        raise KeyError(name)

    def _check_undocumented_error(self, api: _Api, where: str, status: int, body: Any, media: str) -> list[str]:
        if media not in _JSON_TYPES:
            if status in _PROXY_STATUSES:
                return []
            return [f"{where}: undocumented error status with a non-JSON body ({media or 'no content type'})"]
        if api is self._config:
            schema_ptr = _pointer("components", "schemas", "KnownExceptionInfo")
            return [f"{where}: {msg}" for msg in self._validate(api.uri, schema_ptr, api.validator_cls, body)]
        return [f"{where}: {msg}" for msg in self._check_problem(status, body)]

    def _check_problem(self, status: int, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return [f"problem body is not an object: {body!r:.200}"]
        title = body.get("title")
        candidates = self._problem_types.get(title) if isinstance(title, str) else None
        if not candidates:
            return [f"problem title {title!r} is not a problem type of api-problems.yaml"]
        failures: list[str] = []
        for name, consts in candidates:
            errors = self._validate(self._problems_uri, _pointer("components", "schemas", name), None, body)
            for key in ("status", "type"):
                if key in consts and body.get(key) != consts[key]:
                    errors.append(f"{name}.{key} must be {consts[key]!r}, got {body.get(key)!r}")
            if consts.get("status") not in (None, status):
                errors.append(f"{name} is a {consts['status']} problem, answered with HTTP {status}")
            if not errors:
                return []
            failures += errors
        return failures

    @staticmethod
    def _collect_problems(problems: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for name, schema in problems["components"]["schemas"].items():
            consts: dict[str, Any] = {}
            for part in schema.get("allOf", []):
                for key in ("status", "type", "title"):
                    default = part.get("properties", {}).get(key, {}).get("default")
                    if default is not None:
                        consts[key] = default
            if "title" in consts:
                found.setdefault(consts["title"], []).append((name, consts))
        return found

    def _validate(
        self, uri: str, pointer: str, cls: type[jsonschema.protocols.Validator] | None, body: Any
    ) -> list[str]:
        cls = cls or jsonschema.Draft7Validator
        key = (uri, pointer)
        validator = self._validators.get(key)
        if validator is None:
            validator = cls({"$ref": uri + pointer}, registry=self._registry, format_checker=self._format_checker)
            self._validators[key] = validator
        return [_describe(error) for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path))]

    @staticmethod
    def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
        node: Any = doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


def _describe(error: jsonschema.ValidationError) -> str:
    location = "/".join(str(part) for part in error.absolute_path) or "<root>"
    detail = error.message if len(error.message) <= 300 else error.message[:300] + "…"
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        detail += f" (closest: {'/'.join(str(p) for p in best.absolute_path) or '<root>'}: {best.message[:200]})"
    return f"{location}: {detail}"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _coerce_param(raw: Any, schema: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A query/path parameter as its schema type (query strings are text); returns (value, problem)."""
    values = list(raw) if isinstance(raw, list | tuple) else [raw]
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        flat = [part for value in values for part in str(value).split(",") if part != ""]
        coerced = []
        for part in flat:
            value, problem = _coerce_scalar(part, items.get("type"))
            if problem:
                return None, problem
            coerced.append(value)
        return coerced, None
    if len(values) > 1:
        return None, f"given {len(values)} times"
    return _coerce_scalar(values[0], kind)


def _coerce_scalar(value: Any, kind: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return value, None
    if kind == "integer":
        try:
            return int(value), None
        except ValueError:
            return None, f"{value!r} is not an integer"
    if kind == "number":
        try:
            return float(value), None
        except ValueError:
            return None, f"{value!r} is not a number"
    if kind == "boolean":
        if value.lower() in {"true", "false"}:
            return value.lower() == "true", None
        return None, f"{value!r} is not a boolean"
    return value, None


@cache
def default_checker() -> OpenApiChecker:
    """One shared checker (loading the documents takes ~0.5 s)."""
    return OpenApiChecker()
