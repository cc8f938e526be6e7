"""OpenAPI fit for client generation.

- Operation ids: every route names its own `operation_id`; a route that forgets falls back
  to its function name (never FastAPI's `name_path_method` default), and a test checks
  they are all explicit and unique.
- Errors: every 4xx/5xx response is documented as what the service really sends,
  `application/problem+json`, with the exact `code`s the operation can return at that
  status as an enum (app/core/problems.py: the route's own codes, its dependencies' and
  the shared layers'), one realistic example and a description saying when each code
  happens. FastAPI's default 422 (`HTTPValidationError`, plain JSON) is replaced.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.core.admission import EXEMPT_PATHS as ADMISSION_EXEMPT
from app.core.problems import CODES, api_routes, route_problems
from app.core.ratelimit import EXEMPT_PATHS
from app.schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_MEDIA = "application/problem+json"
DESCRIPTIONS = {
    401: "Missing, invalid or expired token",
    403: "The token's role may not use this route",
    404: "Not found, or not the caller's to see",
    409: "Conflicts with the current state",
    413: "The request body is too large",
    422: "The body, path or query is invalid",
    429: "Too many requests",
    503: "A dependency is unavailable",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operation_id_from_name(route: Any) -> str:
    return route.name


def problem_response(status: int, codes: list[str], path: str) -> dict[str, Any]:
    """The response object: a `Problem` whose `code` is one of `codes`."""
    lines = "\n".join(f"- `{code}`: {CODES[code]}" for code in codes)
    first = codes[0]
    example = {"type": f"https://errors.mentorship.dev/{first}",
               "title": CODES[first][:1].upper() + CODES[first][1:], "status": status,
               "detail": CODES[first][:1].upper() + CODES[first][1:] + ".",
               "code": first, "instance": path}
    schema = {"allOf": [PROBLEM_REF],
              "properties": {"code": {"type": "string", "enum": codes}},
              "required": ["code"]}
    return {"description": f"{DESCRIPTIONS.get(status, 'Problem details')}:\n{lines}",
            "content": {PROBLEM_MEDIA: {"schema": schema, "example": example}}}


def _fix_operation(operation: dict[str, Any], declared: dict[int, list[str]],
                   path: str) -> None:
    responses = operation.setdefault("responses", {})
    for status in [status for status in responses if status[:1] in ("4", "5")]:
        if int(status) not in declared:  # FastAPI's default 422 of a route without input
            del responses[status]
    for status, codes in declared.items():
        responses[str(status)] = problem_response(status, codes, path)
    operation["responses"] = dict(sorted(responses.items()))


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"))
        for route in api_routes(app):
            declared = route_problems(route, EXEMPT_PATHS, ADMISSION_EXEMPT)
            path_item = schema["paths"][route.path_format]
            for method in route.methods:
                if method.lower() in path_item:
                    _fix_operation(path_item[method.lower()], declared, route.path_format)
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
