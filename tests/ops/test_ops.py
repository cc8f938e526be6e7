"""Health, readiness, docs and the generic problem responses."""

from __future__ import annotations

import re

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_ok(client):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_readyz_names_what_failed(settings):
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    application = create_app(broken)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["failed"] == ["redis"]
    assert response.json()["code"] == "not_ready"


async def test_docs_and_openapi(client):
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "Mentorship Coordination Engine"
    assert not {"/", "/docs", "/redoc"} & set(schema["paths"])


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_the_service_itself(client, page):
    """No CDN: every script, stylesheet and icon the page names is a path on this service,
    and each is served (the docs work with no internet)."""
    html = (await client.get(page)).text
    assets = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", html)
    assets += re.findall(r"""(?:url|openapi_url)["']?\s*:\s*["']([^"']+)["']""", html)
    assert any(a.endswith(".js") for a in assets), html
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert "cdn" not in html.lower() and "googleapis" not in html


async def test_root_redirects_to_the_docs(client):
    response = await client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/docs"


async def test_unknown_route_is_404_problem(client):
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_wrong_method_is_405_problem(client):
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_request_id_is_echoed_or_made(client):
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["x-request-id"]) == 32  # replaced by a fresh id


async def test_unexpected_error_is_500_problem_without_internals(settings):
    application = create_app(settings)

    @application.get("/boom")
    async def boom():
        raise RuntimeError("secret internal detail")

    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and body["request_id"] == "req-500"
    assert "secret" not in response.text
