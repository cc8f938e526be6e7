"""The Zoom provider against a fake Zoom: a real HTTP server on 127.0.0.1, started here."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.main import create_app
from app.models import MentoringSession, OutboxEvent
from tests.support.session_helpers import SESSIONS, book, week_start

ACCOUNT, CLIENT_ID, CLIENT_SECRET = "acct-1", "client-abc", "s3cret"


@dataclass
class FakeZoom:
    """Records every call; tests flip the answers."""

    token_status: int = 200
    expires_in: int = 3599
    meeting_status: int = 201
    update_status: int = 204
    delay: float = 0.0
    token_calls: list[Request] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, Any] | None, str]] = field(default_factory=list)
    issued: int = 0
    revoked: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            self.token_calls.append(request)
            if self.token_status != 200:
                return JSONResponse({"reason": "down"}, status_code=self.token_status)
            self.issued += 1
            return JSONResponse({"access_token": f"token-{self.issued}", "token_type": "bearer",
                                 "expires_in": self.expires_in, "scope": "meeting:write"})

        async def meetings(request: Request) -> Response:
            await asyncio.sleep(self.delay)
            auth = request.headers.get("authorization", "")
            body = await request.json() if request.method in ("POST", "PATCH") else None
            self.calls.append((request.method, request.url.path, body, auth))
            if auth.removeprefix("Bearer ") in self.revoked or not auth.startswith("Bearer "):
                return JSONResponse({"code": 124, "message": "Invalid access token"}, 401)
            if request.method == "POST":
                if self.meeting_status != 201:
                    return JSONResponse({"message": "boom"}, status_code=self.meeting_status)
                number = 80000000000 + len(self.calls)
                return JSONResponse({"id": number, "join_url": f"https://zoom.test/j/{number}",
                                     "start_time": body["start_time"]}, status_code=201)
            return Response(status_code=self.update_status)

        return Starlette(routes=[
            Route("/oauth/token", token, methods=["POST"]),
            Route("/v2/users/me/meetings", meetings, methods=["POST"]),
            Route("/v2/meetings/{meeting_id}", meetings, methods=["PATCH", "DELETE"]),
        ])


@pytest.fixture
async def zoom() -> AsyncIterator[tuple[FakeZoom, int]]:
    fake = FakeZoom()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # up to 5 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "the fake Zoom did not start"
    yield fake, port
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def zoom_client(zoom, settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API configured for Zoom (fresh app: a fresh token cache)."""
    _, port = zoom
    zoom_settings = settings.model_copy(update={
        "zoom_account_id": ACCOUNT, "zoom_client_id": CLIENT_ID,
        "zoom_client_secret": CLIENT_SECRET,
        "zoom_oauth_url": f"http://127.0.0.1:{port}/oauth/token",
        "zoom_api_base_url": f"http://127.0.0.1:{port}/v2",
        "video_timeout_seconds": 1.0,
        "db_pool_size": 5, "db_max_overflow": 5,
    })
    application = create_app(zoom_settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def rows_and_events(factory, mentor) -> tuple[int, int]:
    async def count(session):
        rows = await session.scalar(select(func.count()).select_from(MentoringSession)
                                    .where(MentoringSession.mentor_id == mentor.id))
        events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.data["mentor_id"].astext == str(mentor.id)))
        return rows, events

    return await factory.run(count)


async def test_token_fetched_once_and_reused_meetings_created(zoom, zoom_client, factory):
    fake, _ = zoom
    mentor, mentees = await factory.mentor_with_mentees(4)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=1, hours=9)
    first = await book(zoom_client, headers, mentees[0], starts, 30, agenda="Intro")
    assert first.status_code == 201, first.text
    # Three more at once: still one token between them.
    rest = await asyncio.gather(*(
        book(zoom_client, headers, mentee, starts + timedelta(hours=i + 1), 45)
        for i, mentee in enumerate(mentees[1:])))
    assert [r.status_code for r in rest] == [201, 201, 201]

    (token_request,) = fake.token_calls
    assert token_request.query_params["grant_type"] == "account_credentials"
    assert token_request.query_params["account_id"] == ACCOUNT
    scheme, credentials = token_request.headers["authorization"].split()
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"

    creates = [c for c in fake.calls if c[0] == "POST"]
    assert len(creates) == 4
    assert {auth for *_, auth in creates} == {"Bearer token-1"}
    _, path, body, _ = creates[0]
    assert path == "/v2/users/me/meetings"
    assert (body["type"], body["duration"], body["agenda"]) == (2, 30, "Intro")
    assert body["start_time"] == starts.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first.json()["meeting_url"].startswith("https://zoom.test/j/")

    async def stored(session):
        return await session.scalar(select(MentoringSession.video_meeting_id).where(
            MentoringSession.id == first.json()["id"]))

    assert first.json()["meeting_url"].endswith(await factory.run(stored))


async def test_provider_5xx_is_503_and_nothing_is_written(zoom, zoom_client, factory):
    fake, _ = zoom
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=2, hours=9)
    for status in (500, 502, 503):
        fake.meeting_status = status
        response = await book(zoom_client, headers, mentee, starts)
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "video_provider_unavailable"
        assert await rows_and_events(factory, mentor) == (0, 0)
    fake.meeting_status = 201  # the slot was never taken
    assert (await book(zoom_client, headers, mentee, starts)).status_code == 201
    assert await rows_and_events(factory, mentor) == (1, 1)


async def test_token_failure_and_timeout_are_503(zoom, zoom_client, factory):
    fake, _ = zoom
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=3, hours=9)
    fake.token_status = 500
    response = await book(zoom_client, headers, mentee, starts)
    assert (response.status_code, response.json()["code"]) == (503,
                                                               "video_provider_unavailable")
    fake.token_status, fake.delay = 200, 1.5  # slower than the 1 s timeout
    response = await book(zoom_client, headers, mentee, starts)
    assert (response.status_code, response.json()["code"]) == (503,
                                                               "video_provider_unavailable")
    assert await rows_and_events(factory, mentor) == (0, 0)


async def test_expiring_or_revoked_tokens_are_fetched_again(zoom, zoom_client, factory):
    fake, _ = zoom
    fake.expires_in = 30  # inside the refresh margin: never reused
    mentor, (a, b, c) = await factory.mentor_with_mentees(3)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=4, hours=9)
    assert (await book(zoom_client, headers, a, starts)).status_code == 201
    assert (await book(zoom_client, headers, b, starts + timedelta(hours=1))).status_code == 201
    assert len(fake.token_calls) == 2
    fake.expires_in = 3599
    fake.revoked.add("token-2")  # Zoom says 401: one new token, one retry
    assert (await book(zoom_client, headers, c, starts + timedelta(hours=2))).status_code == 201
    assert len(fake.token_calls) == 3
    assert [auth for *_, auth in fake.calls[-2:]] == ["Bearer token-2", "Bearer token-3"]


async def test_reschedule_moves_and_cancel_deletes_the_meeting(zoom, zoom_client, factory):
    fake, _ = zoom
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=1, hours=13)
    booked = (await book(zoom_client, headers, mentee, starts)).json()
    meeting_id = booked["meeting_url"].rsplit("/", 1)[1]
    url = f"{SESSIONS}/{booked['id']}"

    fake.update_status = 500  # Zoom cannot move it: nothing changes here either
    refused = await zoom_client.patch(url, headers=headers, json={"duration_minutes": 30})
    assert refused.status_code == 503
    unchanged = (await zoom_client.get(url, headers=headers)).json()
    assert (unchanged["duration_minutes"], unchanged["sequence"]) == (60, 0)

    fake.update_status = 204
    moved = starts + timedelta(hours=2)
    response = await zoom_client.patch(url, headers=headers, json={
        "starts_at": moved.isoformat(), "duration_minutes": 30})
    assert response.status_code == 200, response.text
    method, path, body, _ = fake.calls[-1]
    assert (method, path) == ("PATCH", f"/v2/meetings/{meeting_id}")
    assert (body["start_time"], body["duration"]) == (moved.strftime("%Y-%m-%dT%H:%M:%SZ"), 30)

    fake.update_status = 500  # a failed delete does not block the cancellation
    response = await zoom_client.patch(url, headers=headers, json={"status": "cancelled"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert fake.calls[-1][:2] == ("DELETE", f"/v2/meetings/{meeting_id}")
