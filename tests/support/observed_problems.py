"""Every problem response the test suite sees, checked against the OpenAPI document.

`ProblemRecorder` is an outermost ASGI middleware the test harness adds to every app it
builds (tests/conftest.py wraps `create_app`; live uvicorn servers use
`recording_app`). For each `application/problem+json` answer of a route in the schema it
notes (method, route template, status, code) and whether the route declares that code for
that status (`route_problems`, what app/core/openapi.py writes into `/openapi.json` as the
response's `code` enum: computed from the route, so no request waits for the document).
At the end of the session the `problems_are_declared` fixture fails on any that is not.
Only what was observed is checked, so a partial run checks its part. 500 `internal_error`
is never declared (no route may answer it: the fuzz test and each area's tests fail on it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.admission import EXEMPT_PATHS as ADMISSION_EXEMPT
from app.core.problems import api_routes, route_problems
from app.core.ratelimit import EXEMPT_PATHS

LOG_ENV = "TEST_OBSERVED_PROBLEMS_FILE"  # where a live server writes its observations


@dataclass(frozen=True, order=True)
class Observation:
    method: str
    path: str
    status: int
    code: str
    declared: bool

    def line(self) -> str:
        return f"{self.method} {self.path} {self.status} `{self.code}`"


OBSERVED: set[Observation] = set()


def declared_codes(schema: dict[str, Any], method: str, path: str, status: int) -> list[str]:
    """The `code` enum the document gives for this operation and status ([] if none)."""
    operation = schema.get("paths", {}).get(path, {}).get(method.lower(), {})
    response = operation.get("responses", {}).get(str(status), {})
    media = response.get("content", {}).get("application/problem+json", {})
    return media.get("schema", {}).get("properties", {}).get("code", {}).get("enum", [])


def _route(app: FastAPI, scope: Scope) -> APIRoute | None:
    for route in api_routes(app):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def observe(app: FastAPI, scope: Scope, status: int, body: bytes) -> Observation | None:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    route = _route(app, scope)
    if route is None or not isinstance(code, str) or status == 500:
        return None
    declared = code in route_problems(route, EXEMPT_PATHS, ADMISSION_EXEMPT).get(status, [])
    return Observation(scope["method"], route.path_format, status, code, declared)


class ProblemRecorder:
    """Pure ASGI, outermost: reads problem bodies as they pass, changes nothing."""

    def __init__(self, app: ASGIApp, log_file: str | None = None) -> None:
        self.app = app
        self.log_file = log_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, body, is_problem = 0, b"", False

        async def recording_send(message: Message) -> None:
            nonlocal status, body, is_problem
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                is_problem = status >= 400 and content_type.startswith(
                    b"application/problem+json")
            elif message["type"] == "http.response.body" and is_problem:
                body += message.get("body", b"")
                if not message.get("more_body"):
                    self._record(scope, status, body)
            await send(message)

        await self.app(scope, receive, recording_send)

    def _record(self, scope: Scope, status: int, body: bytes) -> None:
        app = scope.get("app")
        if not isinstance(app, FastAPI):
            return
        observation = observe(app, scope, status, body)
        if observation is None:
            return
        OBSERVED.add(observation)
        if self.log_file:
            with open(self.log_file, "a", encoding="utf-8") as out:
                out.write(json.dumps(observation.__dict__) + "\n")


def install(app: FastAPI, log_file: str | None = None) -> FastAPI:
    app.add_middleware(ProblemRecorder, log_file=log_file)
    return app


def recording_app() -> FastAPI:
    """`uvicorn --factory` target of the live servers: the real app, recorded."""
    from app.main import create_app

    return install(create_app(), os.environ.get(LOG_ENV))


def read_log(path: Path) -> set[Observation]:
    if not path.exists():
        return set()
    return {Observation(**json.loads(line)) for line in path.read_text().splitlines() if line}


def undeclared(observed: set[Observation]) -> list[str]:
    return sorted({o.line() for o in observed if not o.declared})
