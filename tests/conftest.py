"""Test fixtures: real Postgres (migrated by Alembic, used through the non-superuser app
role) and real Redis. See tests/support/harness.py for where the servers come from."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from sqlalchemy import text

import app.core.auth as auth_module
import app.main as app_main
from app.config import Settings, get_settings
from app.core.db import Database
from app.core.logging import _HANDLER_NAME
from app.core.redis import make_redis
from app.schemas.event_data import OUTBOUND_DATA
from tests.support import observed_problems
from tests.support.factories import Factory
from tests.support.harness import ServerHarness, settings_environment
from tests.support.token_audit import LOG_FILES, MINTED, AppLogCapture, find_leaks, recording

# Tests that import mint_token themselves (after this conftest) get the recording one.
auth_module.mint_token = recording(auth_module.mint_token)

# Every app the tests build records its problem responses (tests/support/observed_problems):
# in-process apps through this wrapper (test modules import it after this conftest), live
# servers into this file.
_unrecorded_create_app = app_main.create_app
OBSERVED_LOG = Path(tempfile.gettempdir()) / f"observed-problems-{os.getpid()}.jsonl"
os.environ[observed_problems.LOG_ENV] = str(OBSERVED_LOG)


def create_app(*args, **kwargs) -> FastAPI:
    return observed_problems.install(_unrecorded_create_app(*args, **kwargs))


app_main.create_app = create_app


@pytest.fixture(scope="session", autouse=True)
def problems_are_declared() -> Iterator[None]:
    """At the end of the run: every problem `code` a route answered (in-process or live
    server, any test) is declared in the OpenAPI document for that route and status."""
    OBSERVED_LOG.unlink(missing_ok=True)
    yield
    observed = observed_problems.OBSERVED | observed_problems.read_log(OBSERVED_LOG)
    OBSERVED_LOG.unlink(missing_ok=True)
    missing = observed_problems.undeclared(observed)
    assert not missing, ("problem codes answered but not declared for the route and status "
                         "(declare them beside the route: app/core/problems.py):\n"
                         + "\n".join(missing))


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


# One example of each shape (keys and JSON types) of each type's data in the outbox.
OUTBOX_SHAPES = text("""
    select type, min(data::text) from outbox_events
    group by type, (select jsonb_object_agg(k, jsonb_typeof(v)) from jsonb_each(data) e(k, v))
""")


def _placeholder(model: type[BaseModel], data: dict) -> bool:
    """The relay, SSE and worker tests emit placeholder data (`{"k": "v"}`, `{"n": 1}`,
    a lone `flag_id`) to test the plumbing: rows with under half of the type's required
    fields are those, not an emitter's."""
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    return 2 * len(set(data) & set(required)) < len(required)


@pytest.fixture(scope="session")
async def outbound_data_checked(system_db: Database) -> AsyncIterator[None]:
    """At the end of the run: every outbound event the tests made, including those the
    set-based emitters write in SQL, has the data its type's model documents
    (app/schemas/event_data.py, the catalogue's payload schemas): one example of each
    shape (keys and JSON types) of each type, placeholders aside."""
    yield
    async with system_db.transaction(None) as session:
        shapes = (await session.execute(OUTBOX_SHAPES)).all()
    wrong = []
    for event_type, example in shapes:
        model = OUTBOUND_DATA.get(event_type)
        if model is None or _placeholder(model, json.loads(example)):
            continue
        try:
            model.model_validate_json(example)
        except ValidationError as error:
            wrong.append(f"{event_type}: {error}")
    assert not wrong, "outbound data not as documented:\n" + "\n".join(wrong)


@pytest.fixture(scope="session")
def factory(system_db: Database, settings: Settings, outbound_data_checked: None) -> Factory:
    return Factory(system_db, settings)


@pytest.fixture
async def redis(settings: Settings):
    client = make_redis(settings)
    yield client
    await client.aclose()
