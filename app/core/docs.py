"""Interactive API docs that work without internet: `/docs` (Swagger UI) and `/redoc` load
their scripts, styles and icon from this service (`/docs/static/...`), copied from the
pinned `fastapi-offline` wheel, never from a CDN. `/` redirects to `/docs`."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_PATH = "/docs/static"
ASSETS = files("fastapi_offline") / "static"  # swagger-ui-bundle.js, swagger-ui.css, ...


def install_docs(app: FastAPI) -> None:
    """Call with FastAPI(docs_url=None, redoc_url=None)."""
    app.mount(STATIC_PATH, StaticFiles(directory=str(ASSETS)), name="docs-static")

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = base(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PATH}/favicon.png", with_google_fonts=False)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{base(request)}/docs")
