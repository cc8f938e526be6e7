"""CORS for the SPA's origins, and the request body size limit (413 problem JSON)."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from tests.support.live import live_server

SPA = "https://spa.example"
LIMIT = 1000


@pytest.fixture(scope="module")
async def limited_app(settings):
    application = create_app(settings.model_copy(
        update={"cors_origins": [SPA], "max_body_bytes": LIMIT}))
    calls: list[int] = []

    @application.post("/probe/echo", operation_id="probe_echo", summary="Echo")
    async def probe_echo(body: dict) -> dict:
        calls.append(len(body))
        return {"keys": len(body)}

    application.state.echo_calls = calls
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def http(limited_app):
    transport = httpx.ASGITransport(app=limited_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def _body(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    return b'{"k": "' + b"x" * (size - 9) + b'"}'


async def _chunks(data: bytes, size: int = 256):
    for start in range(0, len(data), size):
        yield data[start:start + size]


class TestCors:
    async def test_preflight_from_the_spa_is_allowed(self, http):
        response = await http.options("/api/v1/whoami", headers={
            "Origin": SPA, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SPA
        assert "authorization" in response.headers["access-control-allow-headers"].lower()

    async def test_responses_expose_the_request_id(self, http):
        response = await http.get("/healthz", headers={"Origin": SPA})
        assert response.headers["access-control-allow-origin"] == SPA
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()

    async def test_other_origins_get_no_cors_headers(self, http):
        response = await http.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers
        preflight = await http.options("/api/v1/whoami", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 400

    async def test_no_origins_configured_means_no_cors(self, client):
        response = await client.get("/healthz", headers={"Origin": SPA})
        assert "access-control-allow-origin" not in response.headers


class TestBodyLimit:
    async def test_body_at_the_limit_passes(self, http, limited_app):
        body = _body(LIMIT)
        assert len(body) == LIMIT
        response = await http.post("/probe/echo", content=body,
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text

    async def test_declared_length_over_the_limit_is_413_before_the_route(self, http,
                                                                         limited_app):
        calls = len(limited_app.state.echo_calls)
        response = await http.post("/probe/echo", content=_body(LIMIT + 1),
                                   headers={"Content-Type": "application/json",
                                            "Origin": SPA})
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "payload_too_large"
        assert response.headers["access-control-allow-origin"] == SPA  # the SPA can read it
        assert "x-request-id" in response.headers
        assert len(limited_app.state.echo_calls) == calls

    async def test_chunked_body_over_the_limit_is_413(self, http, limited_app):
        calls = len(limited_app.state.echo_calls)
        response = await http.post("/probe/echo", content=_chunks(_body(5 * LIMIT)),
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert len(limited_app.state.echo_calls) == calls

    async def test_chunked_body_under_the_limit_passes(self, http):
        response = await http.post("/probe/echo", content=_chunks(_body(LIMIT - 10), 100),
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 200


async def test_limit_on_a_real_server_with_chunked_upload(settings):
    """Through uvicorn: a chunked upload (no Content-Length) over the limit is cut off."""
    with live_server({"MAX_BODY_BYTES": str(LIMIT)}) as server:
        # The admin UI refuses cross-origin posts (issue 16): this one comes from our origin.
        async with httpx.AsyncClient(base_url=server.url,
                                     headers={"Origin": server.url}) as client:
            declared = await client.post("/api/v1/whoami", content=b"x" * (LIMIT + 1))
            assert declared.status_code == 413
            assert declared.json()["code"] == "payload_too_large"
            chunked = await client.post("/admin/login", content=_chunks(b"a=" + b"x" * 4 * LIMIT),
                                        headers={"Content-Type":
                                                 "application/x-www-form-urlencoded"})
            assert chunked.status_code == 413
