"""Pooled connections the server dropped are replaced before use (what `pool_pre_ping` did,
without its three round trips on every checkout: app/core/db.py)."""

from __future__ import annotations

import asyncpg
from sqlalchemy import text

from app.core.db import Database
from tests.support.harness import _plain_dsn
from tests.support.worker_helpers import wait_until


async def _backend_pid(database: Database) -> int:
    async with database.transaction(None) as session:
        return await session.scalar(text("select pg_backend_pid()"))


async def _driver_connection(database: Database) -> asyncpg.Connection:
    """The asyncpg connection the pool hands out (pool_size=1: always the same one)."""
    async with database.transaction(None) as session:
        raw = await (await session.connection()).get_raw_connection()
        return raw.driver_connection


async def _terminate(servers, pid: int) -> None:
    admin = await asyncpg.connect(_plain_dsn(servers.database_url))
    try:
        assert await admin.fetchval("select pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_connection_the_server_closed_is_replaced_not_used(settings, servers):
    database = Database.connect(settings.api_db_url, settings, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(database)
        pooled = await _driver_connection(database)
        await _terminate(servers, first)  # a restart or an operator's kill, while it idles

        async def driver_saw_the_end() -> bool:
            return pooled.is_closed()

        await wait_until(driver_saw_the_end, within=20,
                         message="the socket's end to reach the driver")
        second = await _backend_pid(database)  # no error: a fresh connection served it
        assert second != first
    finally:
        await database.dispose()

