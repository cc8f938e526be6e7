"""The FastAPI application factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from app.admin import mount_admin
from app.config import Settings, get_settings
from app.core import pagination, telemetry
from app.core.db import Database
from app.core.docs import install_docs
from app.core.errors import install_error_handlers
from app.core.identity import IdentityCache
from app.core.logging import configure_logging
from app.core.middleware import RequestPipeline
from app.core.openapi import install_openapi, operation_id_from_name
from app.core.ratelimit import RateLimiter
from app.core.redis import make_redis
from app.core.state import AppState
from app.routers import (
    compliance,
    dashboard,
    live,
    matching,
    mentors,
    relationships,
    risk,
    workqueue,
)
from app.routers.events import inbound, webhooks
from app.routers.ops import health, metrics
from app.routers.sessions import booking, calendar_feeds, scheduling
from app.services.live.hub import StreamHub
from app.services.ops.exporter import start_api_exporter
from app.services.sessions.video import make_video_provider

DESCRIPTION = """
Coordinates a mentoring programme: who mentors whom, each mentor's work queue with SLAs,
session booking within availability and weekly capacity, risk, live dashboards (SSE) and
events in and out (transactional outbox, signed webhooks).

Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
Authentication: `Authorization: Bearer <JWT>` with claims `sub`, `role`, `exp`.

Events: every inbound and outbound event type, the SSE channels and the webhook channel are
described in the [event catalogue (AsyncAPI 3)](/asyncapi.json); what a webhook endpoint
receives is also under `webhooks` in this document.
"""


_heap_frozen = False


def _freeze_startup_heap() -> None:
    """Once per process, after the first startup: the modules, routes, schemas and mappers
    built so far live as long as the process, so move them out of the garbage collector's
    generations (gc.freeze): a full collection then scans what requests allocate, not the
    whole heap again (it was ~8 % of a request's instructions, measured with callgrind)."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


# The API's routers, in matching order.
ROUTERS: tuple[APIRouter, ...] = (
    health.router, dashboard.router, workqueue.router, risk.router, booking.router,
    mentors.router, scheduling.router, calendar_feeds.router, relationships.router,
    inbound.router, webhooks.router, matching.router, live.router, metrics.router,
    compliance.router, inbound.catalogue,
)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, as the app's own: `include_router` (FastAPI 0.163) keeps each
    router as a lazily resolved branch that every request walks route by route through
    FastAPI's include contexts (6 % of a profile request's instructions, callgrind). Our
    routers are included with no prefix, dependencies or tags (their routes carry their
    own), so the routes are the same; tests/contract/test_openapi.py compares the OpenAPI
    document with `include_router`'s."""
    app.router.routes.extend(router.routes)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.environment != "development")
    settings.require_secure("The API")  # fail closed: no public or missing JWT key
    pagination.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = make_redis(settings)
        # A request that finds no connection within the pool timeout gets 503 `overloaded`
        # (app/core/errors.py); the workers keep SQLAlchemy's patient default.
        db = Database.connect(settings.api_db_url, settings,
                              pool_timeout=settings.db_pool_timeout_seconds)
        state = app.state.shared = AppState(
            settings=settings, db=db, redis=redis,
            video=make_video_provider(settings), hub=StreamHub(settings, redis),
            identities=IdentityCache(db.engine, ttl_seconds=settings.auth_cache_seconds),
            limiter=RateLimiter(settings),
        )
        telemetry.instrument_engine(state.db.engine, pool="api")
        exporter = start_api_exporter(settings, db, redis)  # deployment-wide /metrics series
        _freeze_startup_heap()
        try:
            yield
        finally:
            if exporter is not None:
                exporter.cancel()  # releases the exporter lease
                await asyncio.gather(exporter, return_exceptions=True)
            state.hub.close()
            await state.limiter.close(redis)  # the last 50 ms of counts
            await state.redis.aclose()
            await state.db.dispose()
            await admin_engine.dispose()
            telemetry.mark_process_dead()

    app = FastAPI(
        title="Mentorship Coordination Engine",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id_from_name,
        docs_url=None, redoc_url=None,  # served from local assets by install_docs
        # No automatic trailing-slash redirect: Starlette builds its Location from the
        # request's Host header (issue 16, F10); `/x/` for `/x` is a plain 404 problem.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    # One layer for request id, metrics, CORS, admission, rate limit and body size
    # (app/core/middleware.py), outside everything but Starlette's last-resort 500 handler.
    app.add_middleware(RequestPipeline, settings=settings)
    for router in ROUTERS:
        add_routes(app, router)
    app.webhooks.include_router(inbound.webhooks)
    admin_engine = mount_admin(app, settings)
    install_docs(app)
    install_openapi(app)
    return app
