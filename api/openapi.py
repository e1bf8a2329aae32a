"""The OpenAPI document, made true to what the API answers.

FastAPI describes errors as `application/json` and leaves out statuses every route can
answer. Here every error response is `application/problem+json` with the Problem
schema, and each operation lists the errors its inputs can cause: 400 for a malformed
body, 413 for one too large, 422 for invalid input, 401 where it needs a login, 404
where it names a tenant or a resource, 429 where a rate limit applies. Clients generated
from the document then handle every answer they can get.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_JSON
from api.schemas.problem import Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = with_problems(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_problems(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                _add_errors(path, operation)
    return document


def _add_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    parameters = operation.get("parameters", [])
    statuses = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    if "requestBody" in operation:
        statuses |= {400, 413, 422}
    if parameters:
        statuses.add(422)
    if operation.get("security"):
        statuses.add(401)
    if "{" in path or any(p.get("name") == "X-Tenant-ID" for p in parameters):
        statuses.add(404)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": responses.get(str(status), {}).get("description")
            or HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
        }
