"""Test fixtures: real Postgres (migrated by Alembic, used through the non-superuser app
role) and real Redis. See tests/support/harness.py for where the servers come from."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

import app.core.auth as auth_module
from app.config import Settings, get_settings
from app.core.db import Database
from app.core.logging import _HANDLER_NAME
from app.core.redis import make_redis
from app.main import create_app
from tests.support.factories import Factory
from tests.support.harness import ServerHarness, settings_environment
from tests.support.token_audit import LOG_FILES, MINTED, AppLogCapture, find_leaks, recording

# Tests that import mint_token themselves (after this conftest) get the recording one.
auth_module.mint_token = recording(auth_module.mint_token)


@pytest.fixture(scope="session", autouse=True)
def no_token_in_logs() -> Iterator[None]:
    """At the end of the run: no token minted by the tests appears in any log the
    application wrote (live servers' output, in-process apps' JSON lines)."""
    capture = AppLogCapture(_HANDLER_NAME)
    logging.getLogger().addHandler(capture)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(capture)
    leaks = find_leaks(LOG_FILES, MINTED)
    for path in LOG_FILES:
        path.unlink(missing_ok=True)
    assert not leaks, "tokens found in the application's logs:\n" + "\n".join(leaks[:20])


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerHarness]:
    servers = ServerHarness()
    servers.create()
    try:
        with settings_environment(servers.environment()):
            yield servers
    finally:
        servers.drop()


@pytest.fixture(scope="session")
def settings(servers: ServerHarness) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def system_db(settings: Settings) -> AsyncIterator[Database]:
    """The workers' engine (BYPASSRLS role): how the system, and the factories, write."""
    database = Database.connect(settings.worker_db_url, settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def app_db(settings: Settings) -> AsyncIterator[Database]:
    """The API's engine (role mentorship_app): RLS applies."""
    database = Database.connect(settings.api_db_url, settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture(scope="session")
def factory(system_db: Database, settings: Settings) -> Factory:
    return Factory(system_db, settings)


@pytest.fixture
async def redis(settings: Settings):
    client = make_redis(settings)
    yield client
    await client.aclose()
