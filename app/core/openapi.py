"""OpenAPI fit for client generation.

- Operation ids: every route names its own `operation_id`; a route that forgets falls back
  to its function name (never FastAPI's `name_path_method` default), and a test checks
  they are all explicit and unique.
- Errors: every 4xx/5xx response is documented as what the service really sends,
  `application/problem+json` with the `Problem` schema. FastAPI's default 422
  (`HTTPValidationError`, plain JSON) is replaced, and the statuses any route can return
  are added where missing: 401 and 403 on authenticated routes (bad token, wrong role),
  422 wherever there are parameters or a body, 413 wherever there is a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_CONTENT = {"application/problem+json": {"schema": PROBLEM_REF}}
DESCRIPTIONS = {
    "401": "Missing, invalid or expired token",
    "403": "The token's role may not use this route",
    "404": "Not found, or not the caller's to see",
    "409": "Conflicts with the current state",
    "413": "The request body is too large",
    "422": "The body, path or query is invalid",
    "503": "A dependency is unavailable",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operation_id_from_name(route: APIRoute) -> str:
    return route.name


def _problem_response(status: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    description = (existing or {}).get("description")
    if not description or description in ("Validation Error", "Successful Response"):
        description = DESCRIPTIONS.get(status, "Problem details")
    return {**(existing or {}), "description": description, "content": PROBLEM_CONTENT}


def _fix_operation(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    wanted = {status for status in responses if status[:1] in ("4", "5")}
    if operation.get("security"):
        wanted |= {"401", "403"}
    if operation.get("parameters") or operation.get("requestBody"):
        wanted.add("422")
    if operation.get("requestBody"):
        wanted.add("413")
    for status in sorted(wanted):
        responses[status] = _problem_response(status, responses.get(status))


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"))
        for path_item in schema.get("paths", {}).values():
            for method in METHODS:
                if method in path_item:
                    _fix_operation(path_item[method])
        # Webhooks are requests the service sends: the receiver's answers are its own.
        for path_item in schema.get("webhooks", {}).values():
            for operation in path_item.values():
                operation["responses"] = {
                    code: response for code, response in operation.get("responses", {}).items()
                    if code[:1] == "2"}
        # FastAPI's own validation error shapes are never sent: drop them.
        text = repr(schema["paths"]) + repr(schema.get("webhooks", {}))
        for name in ("HTTPValidationError", "ValidationError"):
            if f"#/components/schemas/{name}'" not in text:
                schemas.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
