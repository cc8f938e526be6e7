"""Tokens are claims, the database is the truth (CONTRACT.md v2, "Who a token is").

A token is honoured only while its `sub` is an active user whose current role equals the
token's `role`; each process trusts what it read for AUTH_CACHE_SECONDS (0.2 s in the test
environment; 1 s in the apps built here to show the cache at work)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_sse import aconnect_sse
from sqlalchemy import update
from typer.testing import CliRunner

from app.config import get_settings
from app.devtools import stackfile
from app.devtools.cli import cli
from app.main import create_app
from app.models import User
from tests.support.live import live_server

WHOAMI = "/api/v1/whoami"
TTL = 2.0  # long enough that 'still honoured right after' holds on a starved machine


async def _set(factory, user_id: uuid.UUID, **values) -> None:
    async def change(session):
        await session.execute(update(User).where(User.id == user_id).values(**values))

    await factory.run(change)


@pytest.fixture
async def slow_cache_client(settings):
    """An app whose identity cache keeps entries for TTL seconds."""
    application = create_app(settings.model_copy(update={"auth_cache_seconds": TTL}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


async def _status_once_cached_for_ttl(http, headers, cached_by: float) -> int:
    """WHOAMI's status for a request made once TTL has passed since `cached_by` (a moment
    after the cache entry was filled, so the entry is at least TTL old by then)."""
    await asyncio.sleep(max(0.0, cached_by + TTL - time.monotonic()))
    return (await http.get(WHOAMI, headers=headers)).status_code


class TestTheDatabaseDecides:
    async def test_a_real_active_user_with_their_role_is_honoured(self, client, factory):
        director = await factory.user("director")
        response = await client.get(WHOAMI, headers=factory.headers(director))
        assert response.json() == {"user_id": str(director.id), "role": "director"}

    async def test_unknown_user_with_admin_role_is_401(self, client, factory):
        response = await client.get(WHOAMI, headers=factory.headers(uuid.uuid4(), "admin"))
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"

    @pytest.mark.parametrize("claimed", ["director", "admin", "mentor", "service"])
    async def test_a_mentees_id_with_another_role_is_401(self, client, factory, claimed):
        mentee = await factory.mentee()
        response = await client.get("/api/v1/director/flags",
                                    headers=factory.headers(mentee, claimed))
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"

    async def test_a_service_token_that_names_no_user_is_401(self, client, factory):
        response = await client.post("/api/v1/events", json={"events": []},
                                     headers=factory.headers(uuid.uuid4(), "service"))
        assert response.status_code == 401

    async def test_a_deactivated_user_is_401(self, client, factory):
        mentor = await factory.mentor(active=False)
        response = await client.get(WHOAMI, headers=factory.headers(mentor))
        assert response.status_code == 401


class TestChangesTakeEffectWithinTheCacheTime:
    """The first request after an entry is TTL old sees the change: a bound that holds
    however long requests take (the entry was filled before the response we time from)."""

    async def test_a_demotion(self, slow_cache_client, factory):
        director = await factory.user("director")
        headers = factory.headers(director)
        assert (await slow_cache_client.get("/api/v1/director/flags",
                                            headers=headers)).status_code == 200
        cached_by = time.monotonic()
        await _set(factory, director.id, role="mentor")
        # Cached for up to TTL: still honoured right after (proves the cache is used) ...
        assert (await slow_cache_client.get(WHOAMI, headers=headers)).status_code == 200
        # ... and refused once TTL has passed.
        assert await _status_once_cached_for_ttl(slow_cache_client, headers, cached_by) == 401
        response = await slow_cache_client.get("/api/v1/director/flags", headers=headers)
        assert response.status_code == 401

    async def test_a_deactivation_and_a_reactivation(self, slow_cache_client, factory):
        mentor = await factory.mentor()
        headers = factory.headers(mentor)
        assert (await slow_cache_client.get(WHOAMI, headers=headers)).status_code == 200
        cached_by = time.monotonic()
        await _set(factory, mentor.id, active=False, deactivated_at=datetime.now(UTC))
        assert await _status_once_cached_for_ttl(slow_cache_client, headers, cached_by) == 401
        cached_by = time.monotonic()
        await _set(factory, mentor.id, active=True, deactivated_at=None)
        assert await _status_once_cached_for_ttl(slow_cache_client, headers, cached_by) == 200



@pytest.fixture
async def long_cache_client(settings):
    """An app whose identity cache would keep entries for an hour."""
    application = create_app(settings.model_copy(update={"auth_cache_seconds": 3600}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


def _upsert(user, **changes) -> dict:
    return {"email": f"u{user.id.hex}@example.org", "name": user.name, "role": user.role,
            "timezone": "UTC", "interests": [], **changes}


class TestChangesMadeHereTakeEffectAtOnce:
    """A change this process makes (PUT /users, `user.upserted`, erase) forgets the cached
    identity, as the deactivate route does: no waiting for AUTH_CACHE_SECONDS."""

    async def test_put_user_deactivates_reactivates_and_demotes(self, long_cache_client,
                                                                 factory):
        http = long_cache_client
        mentee = await factory.mentee()
        service, headers = await factory.role_headers("service"), factory.headers(mentee)
        assert (await http.get(WHOAMI, headers=headers)).status_code == 200  # now cached
        put = await http.put(f"/api/v1/users/{mentee.id}", headers=service,
                             json=_upsert(mentee, active=False))
        assert put.status_code == 200, put.text
        assert (await http.get(WHOAMI, headers=headers)).status_code == 401
        await http.put(f"/api/v1/users/{mentee.id}", headers=service,
                       json=_upsert(mentee, active=True))
        assert (await http.get(WHOAMI, headers=headers)).status_code == 200
        await http.put(f"/api/v1/users/{mentee.id}", headers=service,
                       json=_upsert(mentee, role="director"))
        assert (await http.get(WHOAMI, headers=headers)).status_code == 401
        assert (await http.get(WHOAMI, headers=factory.headers(mentee.id, "director"))
                ).status_code == 200

    async def test_user_upserted_events(self, long_cache_client, factory):
        http = long_cache_client
        mentee = await factory.mentee()
        service, headers = await factory.role_headers("service"), factory.headers(mentee)

        async def upserted(active: bool) -> None:
            event = {"id": str(uuid.uuid4()), "type": "user.upserted",
                     "occurred_at": datetime.now(UTC).isoformat(), "source": "test",
                     "data": {"id": str(mentee.id), **_upsert(mentee, active=active)}}
            response = await http.post("/api/v1/events", headers=service, json=event)
            assert response.status_code == 202, response.text

        assert (await http.get(WHOAMI, headers=headers)).status_code == 200
        await upserted(False)
        assert (await http.get(WHOAMI, headers=headers)).status_code == 401
        await upserted(True)
        assert (await http.get(WHOAMI, headers=headers)).status_code == 200

    async def test_erase(self, long_cache_client, factory):
        http = long_cache_client
        mentee = await factory.mentee()
        headers = factory.headers(mentee)
        assert (await http.get(WHOAMI, headers=headers)).status_code == 200
        erased = await http.post(f"/api/v1/admin/users/{mentee.id}/erase",
                                 headers=await factory.role_headers("admin"))
        assert erased.status_code == 200, erased.text
        assert (await http.get(WHOAMI, headers=headers)).status_code == 401


async def test_an_open_stream_ends_when_its_user_is_deactivated(settings, factory):
    """Against a real uvicorn: the SSE stream re-checks the token every AUTH_CACHE_SECONDS
    and ends with `token_revoked`; reconnecting is 401."""
    mentor, _ = await factory.mentor_with_mentees(1)
    token = factory.token(mentor)
    with live_server({"AUTH_CACHE_SECONDS": "0.5", "SSE_PING_SECONDS": "1"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            async with aconnect_sse(http, "GET", "/api/v1/mentor/dashboard/stream",
                                    params={"access_token": token}) as source:
                assert source.response.status_code == 200
                events = source.aiter_sse()
                assert (await anext(events)).event == "snapshot"
                await _set(factory, mentor.id, active=False)
                started = time.monotonic()
                async with asyncio.timeout(10):
                    names = [event.event async for event in events]
                assert names[-1] == "token_revoked"
                assert time.monotonic() - started < 3
            again = await http.get("/api/v1/mentor/dashboard/stream",
                                   params={"access_token": token})
            assert again.status_code == 401


class TestServiceAccounts:
    async def test_the_printed_token_works(self, client, settings):
        user_id = uuid.uuid4()
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["token", "--role", "service", "--user-id", str(user_id)])
        assert result.exit_code == 0, result.output
        response = await client.get(WHOAMI, headers={
            "Authorization": f"Bearer {result.stdout.strip()}"})
        assert response.json() == {"user_id": str(user_id), "role": "service"}
        # A second time reuses the account.
        again = await asyncio.to_thread(
            CliRunner().invoke, cli, ["token", "--role", "service", "--user-id", str(user_id)])
        assert again.exit_code == 0, again.output

    async def test_another_users_id_is_refused(self, factory):
        mentor = await factory.mentor()
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["token", "--role", "service", "--user-id", str(mentor.id)])
        assert result.exit_code == 1
        assert "not a service account" in result.output


class TestTheDevStackIsFound:
    """`mentorship token` in a second terminal, beside `mentorship dev` on the embedded
    default: it has no DATABASE_URL of its own and finds the running stack's."""

    async def test_token_uses_the_running_stack(self, client, settings, tmp_path,
                                                monkeypatch):
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("ENVIRONMENT", "test")
        monkeypatch.setenv("REDIS_URL", settings.redis_url)
        monkeypatch.delenv("DATABASE_URL", raising=False)
        stack = {"ENVIRONMENT": "development", "DATABASE_URL": settings.database_url,
                 "REDIS_URL": settings.redis_url}
        (tmp_path / ".data").mkdir()
        (tmp_path / ".data" / "dev-stack.json").write_text(
            json.dumps({"pid": os.getpid(), "environment": stack}))
        user_id = uuid.uuid4()
        get_settings.cache_clear()
        try:
            result = await asyncio.to_thread(CliRunner().invoke, cli, [
                "token", "--role", "service", "--user-id", str(user_id)])
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert "running `mentorship dev` stack" in result.stderr
        response = await client.get(WHOAMI, headers={
            "Authorization": f"Bearer {result.stdout.strip()}"})
        assert response.json() == {"user_id": str(user_id), "role": "service"}

    def test_a_stopped_stack_is_ignored(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True, check=True)
        (tmp_path / ".data").mkdir()
        (tmp_path / ".data" / "dev-stack.json").write_text(json.dumps(
            {"pid": int(finished.stdout), "environment": {"DATABASE_URL": "x"}}))
        assert stackfile.running_stack() is None
        stackfile.write({"DATABASE_URL": "y"})
        assert stackfile.running_stack() == {"DATABASE_URL": "y"}
        stackfile.remove()
        assert not stackfile.STACK_FILE.exists()
