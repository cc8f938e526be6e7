"""Where the tests' servers come from: TEST_DATABASE_URL / TEST_REDIS_URL when set, else the
embedded servers. Each run gets a fresh database (migrated with `alembic upgrade head`) and
its own Redis key prefix, so parallel runs on one server never meet."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def settings_environment(env: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and re-read settings) for the block, then restore them."""
    from app.config import get_settings

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def _plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ServerHarness:
    def __init__(self) -> None:
        self.name = f"mentorship_test_{uuid.uuid4().hex[:10]}"
        self.prefix = f"mtest:{uuid.uuid4().hex[:10]}:"
        # ENVIRONMENT=test fails closed like production: explicit keys, new for each run.
        self.jwt_secret = secrets.token_urlsafe(32)
        self.admin_secret_key = secrets.token_urlsafe(32)
        self._redis_handle = None
        self._tmp = None
        server_url = os.environ.get("TEST_DATABASE_URL")
        redis_url = os.environ.get("TEST_REDIS_URL")
        if not server_url or not redis_url:
            from app.devtools.embedded import start_postgres, start_redis

            self._tmp = Path(tempfile.mkdtemp(prefix="mentorship-test-"))
            if not server_url:
                server_url = start_postgres(self._tmp / "pg", cleanup_mode="delete")
            if not redis_url:
                self._redis_handle, redis_url = start_redis(self._tmp / "redis")
        if server_url.startswith(("postgres://", "postgresql://")):
            server_url = "postgresql+asyncpg://" + server_url.split("://", 1)[1]
        self.server_url = server_url
        self.redis_url = redis_url
        self.database_url = make_url(server_url).set(database=self.name).render_as_string(
            hide_password=False
        )

    def _admin(self, sql: str) -> None:
        async def run() -> None:
            connection = await asyncpg.connect(_plain_dsn(self.server_url))
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        asyncio.run(run())

    def environment(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": self.prefix,
            "ENVIRONMENT": "test",
            # Webhook receivers in tests listen on 127.0.0.1 (the SSRF tests turn it off).
            "WEBHOOK_ALLOW_PRIVATE": "true",
            # The API's exporter of the deployment-wide /metrics series reads the database
            # every 15 s: off, so its reads stay out of tests that count statements
            # (tests/ops/test_exporter.py turns it on).
            "API_METRICS_EXPORTER": "false",
            # The limiter runs on every request (one Redis round trip) but out of the way of
            # tests that send many requests as one user; tests/core/test_rate_limits.py
            # tightens it.
            "RATE_LIMIT_PER_MINUTE": "1000000",
            # Likewise the admission limit and the pool wait (tests/core/test_admission.py
            # sets its own): tests that fire dozens of concurrent requests on a busy machine
            # test races, not overload.
            "MAX_IN_FLIGHT_REQUESTS": "1000",
            "DB_POOL_TIMEOUT_SECONDS": "30",
            "JWT_SECRET": self.jwt_secret,
            "ADMIN_SECRET_KEY": self.admin_secret_key,
            # A burst worker that runs the relay / webhook loops drains them briefly.
            "WORKER_DRAIN_SECONDS": "5",
            # Tokens are re-checked against the database this often (a demotion in a test
            # takes effect after a short sleep, not a minute).
            "AUTH_CACHE_SECONDS": "0.2",
        }

    def alembic(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alembic", *args],
            cwd=ROOT, env={**os.environ, **self.environment()},
            capture_output=True, text=True, check=False,
        )

    def create(self) -> None:
        template = os.environ.get("TEST_TEMPLATE_DATABASE")
        if template:
            # A copy of an already migrated database (tests/bench/ migrates one for every
            # benchmark it runs): a file copy instead of a migration per database.
            self._admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"')
            return
        self._admin(f'CREATE DATABASE "{self.name}"')
        result = self.alembic("upgrade", "head")
        if result.returncode != 0:
            raise RuntimeError(f"alembic upgrade failed:\n{result.stdout}\n{result.stderr}")

    def database_url_for(self, name: str) -> str:
        """The URL of another database on the same server (for tests needing their own)."""
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create an empty, unmigrated database on the same server; returns its URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.database_url_for(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self) -> None:
        try:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            self._redis_handle = None
