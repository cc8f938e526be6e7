"""A throwaway, migrated database for a benchmark (the tests' harness: `TEST_DATABASE_URL`
or the embedded server), plus bulk loading with COPY as the migrating account."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

from app.config import Settings, get_settings  # noqa: E402
from tests.support.harness import ServerHarness, _plain_dsn  # noqa: E402


class BenchDatabase:
    def __enter__(self) -> BenchDatabase:
        self.servers = ServerHarness()
        self.servers.create()
        os.environ.update(self.servers.environment())
        get_settings.cache_clear()
        self.settings: Settings = get_settings()
        return self

    def __exit__(self, *exc: Any) -> None:
        if os.environ.get("BENCH_KEEP_DB"):
            print(f"kept database {self.servers.name}")
            return
        self.servers.drop()

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(_plain_dsn(self.servers.database_url))

    async def copy(self, table: str, columns: Sequence[str],
                   records: Iterable[Sequence[Any]]) -> None:
        connection = await self.connect()
        try:
            await connection.copy_records_to_table(table, columns=list(columns),
                                                   records=records)
        finally:
            await connection.close()

    async def sql(self, statement: str, *args: Any) -> Any:
        connection = await self.connect()
        try:
            return await connection.execute(statement, *args)
        finally:
            await connection.close()

    async def fetchval(self, statement: str, *args: Any) -> Any:
        connection = await self.connect()
        try:
            return await connection.fetchval(statement, *args)
        finally:
            await connection.close()
