"""The directors' and the mentees' live streams (SSE): the mentor stream's guarantees
(snapshot, events through the real outbox relay, resume on another replica, ping, token
expiry, auth before the stream), against real uvicorn processes, Redis and Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from app.services.events.relay import run_relay
from tests.support.live import LiveServer
from tests.support.worker_helpers import scalar, wait_until

DIRECTOR = "/api/v1/director/stream"
MENTEE = "/api/v1/mentee/stream"
TIMEOUT = 15.0


@pytest.fixture(scope="module")
def replicas(settings):
    """Two API processes sharing Postgres and Redis; B pings every second."""
    a = LiveServer.start({})
    b = LiveServer.start({"SSE_PING_SECONDS": "1"})
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
async def relay(system_db, redis, settings):
    """The real outbox relay, publishing committed events to the users' streams."""
    task = asyncio.create_task(run_relay(system_db, redis, settings=settings, seconds=60))
    yield
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping it is enough
        pass


async def _published(event_type: str, mentee_id: uuid.UUID, system_db) -> bool:
    return bool(await scalar(system_db, "select count(*) from outbox_events where type = :type "
                             "and data->>'mentee_id' = :id and published_at is not null",
                             type=event_type, id=str(mentee_id)))


class Events:
    def __init__(self, source) -> None:
        self._iterator = source.aiter_sse()

    async def next(self, within: float = TIMEOUT) -> ServerSentEvent:
        async with asyncio.timeout(within):
            return await anext(self._iterator)

    async def until(self, event_type: str, within: float = TIMEOUT) -> ServerSentEvent:
        async with asyncio.timeout(within):
            while True:
                event = await anext(self._iterator)
                if event.event == event_type:
                    return event

    async def rest(self, within: float = TIMEOUT) -> list[ServerSentEvent]:
        async with asyncio.timeout(within):
            return [event async for event in self._iterator]


@asynccontextmanager
async def stream(server: LiveServer, path: str, token: str,
                 last_event_id: str | None = None) -> AsyncIterator[Events]:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client, \
            aconnect_sse(client, "GET", path, headers=headers) as source:
        assert source.response.status_code == 200, await source.response.aread()
        yield Events(source)


async def _api(server: LiveServer, method: str, path: str, headers, body=None):
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        return await http.request(method, path, headers=headers, json=body)


class TestDirectorStream:
    async def test_snapshot_then_assignments_and_flags_live(self, replicas, factory, relay):
        a, _ = replicas
        director = await factory.user("director")
        mentor, mentee = await factory.mentor(), await factory.mentee()
        async with stream(a, DIRECTOR, factory.token(director)) as events:
            snapshot = await events.next()
            assert snapshot.event == "snapshot"
            body = json.loads(snapshot.data)
            assert {"metrics", "open_flags", "escalated_flags", "waiting_mentees",
                    "generated_at"} <= body.keys()
            assert set(body["open_flags"]) == {"low", "medium", "high", "critical"}
            assert body["waiting_mentees"] >= 1  # the mentee above waits

            assigned = await _api(a, "POST", "/api/v1/director/assignments",
                                  factory.headers(director),
                                  {"mentee_id": str(mentee.id), "mentor_id": str(mentor.id)})
            assert assigned.status_code == 201
            created = await events.until("assignment.created")
            assert json.loads(created.data)["data"]["mentee_id"] == str(mentee.id)

            raised = await _api(a, "POST", "/api/v1/mentor/flags", factory.headers(mentor),
                                {"mentee_id": str(mentee.id), "severity": "high",
                                 "category": "engagement", "note": "quiet"})
            assert raised.status_code == 201
            flag = await events.until("flag.raised")
            envelope = json.loads(flag.data)
            assert envelope["refresh_priority"] == "urgent" and "note" not in envelope["data"]

            escalated = await _api(a, "PATCH",
                                   f"/api/v1/director/flags/{raised.json()['id']}",
                                   factory.headers(director), {"status": "escalated"})
            assert escalated.status_code == 200
            assert json.loads((await events.until("flag.escalated")).data)[
                "refresh_priority"] == "urgent"

    async def test_resume_on_another_replica_gets_the_missed_events(
            self, replicas, factory, relay, system_db):
        a, b = replicas
        director = await factory.user("director")
        async with stream(a, DIRECTOR, factory.token(director)) as events:
            last = (await events.next()).id
        mentor, mentee = await factory.mentor(), await factory.mentee()
        assigned = await _api(b, "POST", "/api/v1/director/assignments",
                              factory.headers(director),
                              {"mentee_id": str(mentee.id), "mentor_id": str(mentor.id)})
        assert assigned.status_code == 201
        # Resumed only once the relay has published the event (it is in the stream): the
        # event must come as a missed one, not live after the resume.
        await wait_until(lambda: _published("assignment.created", mentee.id, system_db),
                         within=30, message="the relay to publish assignment.created")
        async with stream(b, DIRECTOR, factory.token(director), last_event_id=last) as events:
            first = await events.next()
        assert first.event == "assignment.created"  # no snapshot: a resume

    async def test_pings_and_token_expiry(self, replicas, factory):
        _, b = replicas
        director = await factory.user("director")
        token = factory.token(director, ttl=timedelta(seconds=4))
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=b.url, timeout=TIMEOUT) as http, \
                http.stream("GET", DIRECTOR, headers=headers) as response:
            lines = []
            async with asyncio.timeout(12):
                async for line in response.aiter_lines():
                    lines.append(line)
        assert sum(line.startswith(": ping") for line in lines) >= 2
        assert "event: token_expired" in lines

    async def test_roles(self, replicas, factory):
        a, _ = replicas
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        admin = await factory.user("admin")
        for user, path, status in ((mentor, DIRECTOR, 403), (mentee, DIRECTOR, 403),
                                   (mentor, MENTEE, 403), (admin, MENTEE, 403)):
            response = await _api(a, "GET", path, factory.headers(user))
            assert response.status_code == status, (user.role, path)
            assert response.headers["content-type"].startswith("application/problem+json")
        response = await _api(a, "GET", DIRECTOR, {})
        assert response.status_code == 401
        async with stream(a, DIRECTOR, factory.token(admin)) as events:
            assert (await events.next()).event == "snapshot"


class TestMenteeStream:
    async def test_snapshot_is_the_home_view_then_own_events(self, replicas, factory, relay):
        a, _ = replicas
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        async with stream(a, MENTEE, factory.token(mentee)) as events:
            snapshot = await events.next()
            assert snapshot.event == "snapshot"
            home = json.loads(snapshot.data)
            direct = await _api(a, "GET", "/api/v1/mentee/me", factory.headers(mentee))
            assert home["profile"] == direct.json()["profile"]
            assert home["mentor"]["id"] == str(mentor.id) and "at_risk" in home

            starts = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0,
                                                                     microsecond=0)
            booked = await _api(a, "POST", "/api/v1/mentor/sessions", factory.headers(mentor),
                                {"mentee_id": str(mentee.id), "starts_at": starts.isoformat(),
                                 "duration_minutes": 30})
            assert booked.status_code == 201
            event = await events.until("session.scheduled")
            assert json.loads(event.data)["data"]["meeting_url"] == booked.json()["meeting_url"]

            # A flag about them never reaches them.
            await _api(a, "POST", "/api/v1/mentor/flags", factory.headers(mentor),
                       {"mentee_id": str(mentee.id), "severity": "low", "category": "x"})
            marker = str(uuid.uuid4())
            await _api(a, "PATCH", f"/api/v1/mentor/sessions/{booked.json()['id']}",
                       factory.headers(mentor), {"status": "cancelled", "reason": marker})
            cancelled = await events.until("session.cancelled")
            assert json.loads(cancelled.data)["data"]["reason"] == marker

    async def test_a_mentee_without_a_mentor_still_streams(self, replicas, factory):
        a, _ = replicas
        mentee = await factory.mentee()
        async with stream(a, MENTEE, factory.token(mentee)) as events:
            snapshot = await events.next()
        assert json.loads(snapshot.data)["mentor"] is None


async def test_a_user_who_never_connects_costs_bounded_memory(settings, redis):
    """Streams of users who never connect expire (STREAM_TTL_SECONDS, default 7 days, on the
    stream and its epoch meta together) besides being trimmed (STREAM_MAXLEN)."""
    from app.config import Settings
    from app.core.redis import user_stream_key
    from app.core.streams import append, user_stream_meta_key

    assert Settings.model_fields["stream_ttl_seconds"].default == 7 * 24 * 3600
    defaults = settings.model_copy(update={"stream_ttl_seconds": 7 * 24 * 3600})
    user_id = uuid.uuid4()
    await append(redis, defaults, marker=f"{defaults.redis_prefix}test:{uuid.uuid4()}",
                 user_id=user_id, type="assignment.created", data="{}")
    for key in (user_stream_key(defaults, user_id), user_stream_meta_key(defaults, user_id)):
        assert 0 < await redis.ttl(key) <= 7 * 24 * 3600
