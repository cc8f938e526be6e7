"""OpenAPI fit for client generation, checked over every route the app has (including
the ones added later by other areas)."""

from __future__ import annotations

import re

import app.main as app_main
from app.main import create_app

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _codes(response):
    return response["content"]["application/problem+json"]["schema"]["properties"]["code"][
        "enum"]


def _check_problem_response(name, status, response):
    """Problem JSON whose `code` is an enum of the codes, an example with the first of them
    at this status, and a description naming when each code happens."""
    assert list(response["content"]) == ["application/problem+json"], name
    media = response["content"]["application/problem+json"]
    assert media["schema"]["allOf"] == [PROBLEM_REF], f"{name} {status}"
    codes = _codes(response)
    assert codes and len(codes) == len(set(codes)), f"{name} {status}: {codes}"
    example = media["example"]
    assert (example["status"], example["code"]) == (status, codes[0]), f"{name} {status}"
    for code in codes:
        assert f"`{code}`: " in response["description"], f"{name} {status} {code}"


def test_every_route_names_its_operation_and_summary(settings, monkeypatch):
    """No route may rely on the fallbacks: an id made up from the function name, or the
    summary FastAPI derives from it."""
    monkeypatch.setattr(app_main, "operation_id_from_name",
                        lambda route: f"FALLBACK_{route.name}")
    schema = app_main.create_app(settings).openapi()
    operations = list(_operations(schema))
    assert len(operations) >= 5
    missing_ids = [name for name, op in operations if op["operationId"].startswith("FALLBACK_")]
    assert not missing_ids, f"routes without an explicit operation_id: {missing_ids}"
    derived = [name for name, op in operations
               if op["summary"] == op["operationId"].replace("_", " ").title()]
    assert not derived, f"routes without an explicit summary: {derived}"


def test_every_operation_documents_its_responses(settings):
    schema = create_app(settings).openapi()
    ids = []
    for name, operation in _operations(schema):
        ids.append(operation["operationId"])
        assert SNAKE.match(operation["operationId"]), name
        assert operation.get("summary"), name
        responses = operation["responses"]
        successes = [status for status in responses if status.startswith("2")]
        assert successes, f"{name}: no success response"
        for status in successes:
            if status != "204":
                content = responses[status].get("content")
                assert content and all(media.get("schema") for media in content.values()), (
                    f"{name} {status}: no response model")
        for status, response in responses.items():
            if status[0] in "45":
                _check_problem_response(name, int(status), response)
        if operation.get("security"):
            assert "401" in responses, f"{name}: 401 undeclared"
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, f"{name}: 422 undeclared"
        if operation.get("requestBody"):
            assert "413" in responses, f"{name}: 413 undeclared"
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    schemas = schema["components"]["schemas"]
    assert "Problem" in schemas and "HTTPValidationError" not in schemas


def test_a_route_without_operation_id_falls_back_to_its_function_name(settings):
    application = create_app(settings)

    @application.post("/probe/items/{item_id}")
    async def update_probe_item(item_id: int, body: dict) -> dict:
        return body

    operation = application.openapi()["paths"]["/probe/items/{item_id}"]["post"]
    assert operation["operationId"] == "update_probe_item"
    assert _codes(operation["responses"]["422"]) == ["validation_error"]
    assert _codes(operation["responses"]["413"]) == ["payload_too_large"]


async def test_validation_errors_are_served_as_documented(client, factory):
    """What the schema promises for 422 is what a client gets."""
    director = await factory.user("director")
    response = await client.get("/api/v1/director/metrics", headers={
        **factory.headers(director)}, params={"limit": "x"})
    assert response.status_code == 200  # no parameters: extra ones are ignored
    broken = await client.get("/api/v1/whoami", headers={"Authorization": "Basic abc"})
    assert broken.status_code == 401
    assert broken.headers["content-type"].startswith("application/problem+json")


async def test_a_body_that_is_not_utf8_is_a_documented_422(client, factory):
    """Found by schemathesis: FastAPI answers 400 (undocumented) when the JSON body cannot
    even be decoded as text."""
    mentor = await factory.mentor()
    response = await client.post("/api/v1/mentor/flags", content=b'{"a": "\xff\xfe"}',
                                 headers={**factory.headers(mentor),
                                          "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["type"] == "json_invalid"


def test_component_names_are_unique_and_plain(settings):
    """Client generators name classes after a schema's title: two models with one name
    (FastAPI then prefixes module paths, `app__schemas__x__Name`) break generation."""
    schemas = create_app(settings).openapi()["components"]["schemas"]
    qualified = [name for name in schemas if "__" in name]
    assert not qualified, f"models sharing a class name across modules: {qualified}"
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    duplicated = {title for title in titles if titles.count(title) > 1}
    assert not duplicated, duplicated


def test_every_operation_has_one_tag(settings):
    """Swagger UI lists an operation once per tag (`whoami` was under `ops` and `auth`)."""
    schema = create_app(settings).openapi()
    several = [name for name, op in _operations(schema) if len(op.get("tags", [])) > 1]
    assert not several, several


def test_shared_layers_compose_into_each_operation(settings):
    """Codes of the layers a route uses are added without the route naming them."""
    schema = create_app(settings).openapi()
    book = schema["paths"]["/api/v1/mentor/sessions"]["post"]["responses"]
    assert _codes(book["401"]) == ["missing_token", "invalid_token", "token_expired"]
    assert _codes(book["403"]) == ["wrong_role"]
    assert _codes(book["409"])[0] == "double_booking"
    assert _codes(book["413"]) == ["payload_too_large"]
    assert _codes(book["422"]) == ["validation_error"]
    assert _codes(book["429"]) == ["rate_limited"]
    assert _codes(book["503"]) == ["video_provider_unavailable", "service_unavailable",
                                   "overloaded"]
    whoami = schema["paths"]["/api/v1/whoami"]["get"]["responses"]
    assert "403" not in whoami and "422" not in whoami  # any role, no parameters
    assert set(schema["paths"]["/healthz"]["get"]["responses"]) == {"200"}  # not limited


def test_a_problem_status_without_codes_is_refused(settings):
    """An old-style `responses={404: {...}}` cannot document a problem: its codes are
    required (`problems({404: [...]})`)."""
    application = create_app(settings)

    @application.get("/probe/old", operation_id="probe_old", summary="Probe",
                     responses={404: {"description": "Not found"}})
    async def probe_old() -> dict:
        return {}

    try:
        application.openapi()
    except ValueError as error:
        assert "probe_old" in str(error)
    else:
        raise AssertionError("a 404 without codes was accepted")


def test_routes_added_as_the_app_s_own_are_what_include_router_would_serve():
    """app/main.py adds each router's routes to the app itself (`add_routes`), not through
    `include_router`'s lazily resolved branches: same paths, methods, operations and
    schemas, in the same matching order."""
    from fastapi import FastAPI
    from fastapi.routing import APIRoute

    included, added = FastAPI(), FastAPI()
    for router in app_main.ROUTERS:
        included.include_router(router)
        app_main.add_routes(added, router)
    assert added.openapi() == included.openapi()
    served = [(r.path, sorted(r.methods)) for r in added.routes if isinstance(r, APIRoute)]
    assert served == [(r.path, sorted(r.methods))
                      for router in app_main.ROUTERS for r in router.routes
                      if isinstance(r, APIRoute)]
