"""The stack's floor for bench.gap_bench: FastAPI + an asyncpg pool, no auth, no middleware.

One route runs what every request of the real app must run at least: a transaction that
sets the RLS identity, and one trivial statement (`uvicorn --factory bench.bare_app:app`,
DATABASE_URL in the environment)."""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

IDENTITY = "select set_config('app.user_id', $1, true), set_config('app.role', 'mentor', true)"


def app() -> FastAPI:
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    pool_size = int(os.environ.get("DB_POOL_SIZE", "20"))

    @asynccontextmanager
    async def lifespan(application: FastAPI):
        application.state.pool = await asyncpg.create_pool(dsn, min_size=pool_size,
                                                           max_size=pool_size)
        yield
        await application.state.pool.close()

    application = FastAPI(lifespan=lifespan, openapi_url=None)
    user_id = str(uuid.uuid4())

    @application.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @application.get("/floor")
    async def floor() -> dict[str, int]:
        async with application.state.pool.acquire() as connection, connection.transaction():
            await connection.execute(IDENTITY, user_id)
            return {"ok": await connection.fetchval("select 1")}

    return application
