"""The error bodies the fake Airbyte answers with, as each server version writes them.

- Micronaut's own bodies (``{message, _links, _embedded.errors}``) for what never reaches Airbyte's code: unknown
  paths, wrong methods, a bad token.
- The Config API's ``KnownExceptionInfo`` in the style of a server version: ``v0`` (``io.airbyte.server.errors``
  with a stack), ``v1`` (``io.airbyte.commons.server.errors``), ``head`` (only an ``errorId``, as current servers do).
- The public API's ``application/problem+json`` bodies of ``api-problems.yaml``.
"""

from __future__ import annotations

import uuid
from typing import Any

from support.fake_airbyte.routing import Reply

ERRORS_URL = "https://reference.airbyte.com/reference/errors"
PROBLEMS: dict[str, tuple[int, str, str]] = {  # title -> (status, type, detail) as in api-problems.yaml
    "bad-request": (400, f"{ERRORS_URL}#bad-request", "The request could not be understood by the server."),
    "invalid-api-key": (401, f"{ERRORS_URL}#invalid-api-key", "The API key in the Authorization header is invalid."),
    "resource-not-found": (404, f"{ERRORS_URL}#resource-not-found", "The requested resource could not be found."),
    "state-conflict": (409, f"{ERRORS_URL}#409-state-conflict", "State conflict"),
    "try-again-later": (409, f"{ERRORS_URL}#try-again-later", "Please try again later."),
    "unprocessable-entity": (422, f"{ERRORS_URL}#unprocessable-entity", "The body of the request was not understood"),
    "unexpected-problem": (500, ERRORS_URL, "An unexpected problem has occurred."),
}
CONFLICT_CLASSES = {
    "v0": "io.airbyte.server.errors.ValueConflictKnownException",
    "v1": "io.airbyte.commons.server.errors.ValueConflictKnownException",
}
NOT_FOUND_CLASSES = {
    "v0": "io.airbyte.server.errors.IdNotFoundKnownException",
    "v1": "io.airbyte.commons.server.errors.IdNotFoundKnownException",
}
# kind -> the config type Airbyte names in its "Could not find configuration for ..." message
CONFIG_TYPES = {
    "connection": "STANDARD_SYNC",
    "workspace": "STANDARD_WORKSPACE",
    "source": "SOURCE_CONNECTION",
    "destination": "DESTINATION_CONNECTION",
    "source_definition": "STANDARD_SOURCE_DEFINITION",
    "destination_definition": "STANDARD_DESTINATION_DEFINITION",
}


def micronaut(status: int, message: str, detail: str, path: str) -> Reply:
    """A body Micronaut writes itself (routing, auth), before any Airbyte handler runs."""
    body = {
        "message": message,
        "_links": {"self": {"href": path, "templated": False}},
        "_embedded": {"errors": [{"message": detail, "_links": {}, "_embedded": {}}]},
    }
    return Reply(status, body)


def config_not_found(kind: str, ident: Any, style: str) -> Reply:
    """404 for an unknown ``kind`` (connection, workspace, job, source, ..._definition) on the Config API."""
    if style == "head":
        return Reply(404, {"errorId": str(uuid.uuid4())})
    if kind == "job":
        message = f"Could not find job with id: {ident}"
    else:
        message = f"Could not find configuration for {CONFIG_TYPES[kind]}: {ident}."
    return Reply(
        404,
        {
            "id": str(ident),
            "message": message,
            "exceptionClassName": NOT_FOUND_CLASSES[style],
            "exceptionStack": stack(NOT_FOUND_CLASSES[style], message),
            "rootCauseExceptionClassName": "io.airbyte.data.exceptions.ConfigNotFoundException",
            "rootCauseExceptionStack": stack("io.airbyte.data.exceptions.ConfigNotFoundException", message),
        },
    )


def not_found(api: str, kind: str, ident: Any, style: str) -> Reply:
    """404 for an unknown object, in the body of the API that was asked."""
    return public_not_found(kind, ident) if api == "public" else config_not_found(kind, ident, style)


def config_conflict(connection_id: str, style: str) -> Reply:
    """409 "A sync is already running" in ``style``'s body (``public``: the problem the public API answers)."""
    message = f"A sync is already running for: {connection_id}"
    if style == "public":
        return problem("try-again-later", message)
    if style == "head":
        return Reply(409, {"message": message, "details": {}, "errorId": str(uuid.uuid4())})
    body: dict[str, Any] = {"message": message, "exceptionClassName": CONFLICT_CLASSES[style]}
    if style == "v0":
        body["exceptionStack"] = stack(CONFLICT_CLASSES[style], message)
    return Reply(409, body)


def config_internal(message: str, style: str) -> Reply:
    """500 as the Config API answers an IllegalStateException (e.g. syncing an inactive connection)."""
    if style == "head":
        return Reply(500, {"errorId": str(uuid.uuid4())})
    text = f"Internal Server Error: {message}"
    return Reply(
        500,
        {
            "message": text,
            "exceptionClassName": "java.lang.IllegalStateException",
            "exceptionStack": stack("java.lang.IllegalStateException", message),
            "rootCauseExceptionClassName": "java.lang.IllegalStateException",
            "rootCauseExceptionStack": stack("java.lang.IllegalStateException", message),
        },
    )


def config_invalid(errors: list[str]) -> Reply:
    """422 for a request body the Config API's schema (or a connector's spec) refuses."""
    return Reply(
        422,
        {
            "message": "Some properties contained invalid input.",
            "exceptionClassName": "io.airbyte.commons.server.errors.BadObjectSchemaKnownException",
            "validationErrors": [{"propertyPath": "body", "message": error[:500]} for error in errors],
        },
    )


def problem(title: str, message: str | None = None, data: dict[str, Any] | None = None) -> Reply:
    """A public API problem+json of a known ``title``, with ``data`` (default ``{"message": message}``)."""
    status, kind, detail = PROBLEMS[title]
    body: dict[str, Any] = {"status": status, "type": kind, "title": title, "detail": detail}
    if data is not None:
        body["data"] = data
    elif message is not None:
        body["data"] = {"message": message}
    return Reply(status, body, content_type="application/problem+json")


def public_not_found(kind: str, ident: Any) -> Reply:
    return problem("resource-not-found", data={"resourceType": kind, "resourceId": str(ident)})


def stack(exception_class: str, message: str) -> list[str]:
    return [
        f"{exception_class}: {message}",
        "\tat io.airbyte.commons.server.handlers.SchedulerHandler.submitManualSyncToWorker(SchedulerHandler.kt:1)",
        "\tat io.airbyte.server.apis.controllers.ConnectionApiController.syncConnection(ConnectionApiController.kt:1)",
    ]
