"""The FastAPI application factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.db import Database
from app.errors import install_error_handlers
from app.logging import configure_logging
from app.middleware import RequestIdMiddleware
from app.redis import make_redis
from app.routers import (
    dashboard,
    director,
    events,
    matching,
    metrics,
    ops,
    sessions,
    stream,
    webhooks,
    workspace,
)

DESCRIPTION = """
Coordinates a mentoring programme: who mentors whom, each mentor's work queue with SLAs,
session booking within availability and weekly capacity, risk, live dashboards (SSE) and
events in and out (transactional outbox, signed webhooks).

Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
Authentication: `Authorization: Bearer <JWT>` with claims `sub`, `role`, `exp`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(json=settings.environment != "development")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.db = Database.connect(settings.api_db_url, settings)
        app.state.redis = make_redis(settings)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.db.dispose()

    app = FastAPI(
        title="Mentorship Coordination Engine",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(ops.router)
    for module in (dashboard, workspace, sessions, director, events, webhooks, matching, stream,
                   metrics):
        app.include_router(module.router)
    return app
