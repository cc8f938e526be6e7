"""The harness's problem recorder (tests/support/observed_problems.py) itself."""

from __future__ import annotations

import json

from app.core.errors import Conflict
from app.core.problems import problems
from app.main import create_app
from tests.support.observed_problems import OBSERVED, Observation, observe


async def test_every_in_process_problem_is_recorded_with_its_route(client):
    response = await client.get("/api/v1/mentor/sessions/not-a-uuid")
    assert response.status_code == 401
    assert Observation("GET", "/api/v1/mentor/sessions/{session_id}", 401, "missing_token",
                       True) in OBSERVED


def test_a_code_the_route_does_not_declare_is_flagged(settings):
    app = create_app(settings)

    @app.post("/probe/{item_id}", operation_id="probe", summary="Probe",
              responses=problems({409: ["double_booking"]}))
    async def probe(item_id: int) -> None:
        raise Conflict(code="capacity_exceeded")

    scope = {"type": "http", "method": "POST", "path": "/probe/7", "root_path": "",
             "query_string": b"", "headers": []}
    body = json.dumps({"code": "capacity_exceeded"}).encode()
    assert observe(app, scope, 409, body) == Observation("POST", "/probe/{item_id}", 409,
                                                         "capacity_exceeded", False)
    declared = json.dumps({"code": "double_booking"}).encode()
    assert observe(app, scope, 409, declared).declared
    assert observe(app, scope, 422, json.dumps({"code": "validation_error"}).encode()).declared
    assert observe(app, {**scope, "path": "/nowhere"}, 404, body) is None  # no route
