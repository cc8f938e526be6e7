"""The live mentor dashboard (SSE), against real uvicorn processes, Redis and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_sse import ServerSentEvent, aconnect_sse
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.config import APP_DB_ROLE, Settings
from app.core.outbox import REFRESH_PRIORITY, SOURCE
from app.core.redis import user_stream_key
from app.core.streams import append, parse_sse_id, user_stream_meta_key
from app.main import create_app
from app.services.events.relay import marker_key
from tests.support.live import ROOT, LiveServer

PATH = "/api/v1/mentor/dashboard/stream"
READ_TIMEOUT = 15.0
KEYS_PER_READER_A = 16


# --- how events are caused ------------------------------------------------------------------

async def publish(redis, settings: Settings, user_id: uuid.UUID, type: str,
                  data: dict[str, Any]) -> str:
    """Append an event to the user's stream exactly as the outbox relay does; its SSE id."""
    envelope = {
        "id": str(uuid.uuid4()),
        "type": type,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": SOURCE,
        "refresh_priority": REFRESH_PRIORITY.get(type, "normal"),
        "data": data,
    }
    return await append(redis, settings, marker=marker_key(settings, envelope["id"], user_id),
                        user_id=user_id, type=type, data=json.dumps(envelope))


class Causes:
    """Events in a mentor's stream, XADDed here exactly as the outbox relay does (the
    API -> outbox -> relay -> stream path is covered end to end by
    test_booking_and_mission_through_the_api_arrive_in_order)."""

    def __init__(self, redis, settings: Settings) -> None:
        self.redis, self.settings = redis, settings

    async def session_booked(self, mentor, mentee) -> tuple[str, str]:
        data = {"session_id": str(uuid.uuid4()), "mentor_id": str(mentor.id),
                "mentee_id": str(mentee.id),
                "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "duration_minutes": 30}
        return "session.scheduled", await publish(self.redis, self.settings, mentor.id,
                                                  "session.scheduled", data)

    async def mission_submitted(self, mentor, mentee) -> tuple[str, str]:
        data = {"work_item_id": str(uuid.uuid4()), "kind": "mission_review",
                "mentee_id": str(mentee.id), "priority": "high"}
        return "workqueue.item_created", await publish(self.redis, self.settings, mentor.id,
                                                       "workqueue.item_created", data)

    async def any(self, mentor, n: int = 1) -> list[tuple[str, str]]:
        return [("flag.raised", await publish(self.redis, self.settings, mentor.id,
                                              "flag.raised", {"n": i})) for i in range(n)]


# --- servers and clients --------------------------------------------------------------------

@pytest.fixture(scope="module")
def sse_client_name() -> str:
    return f"mentorship-sse-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def replicas(settings, sse_client_name):
    """Two API processes sharing Postgres and Redis. A's readers take 16 users' streams each
    (so a few tests need several readers); B pings every second and drops a client that
    stops reading after 2 s."""
    a = LiveServer.start({"SSE_REDIS_CLIENT_NAME": sse_client_name,
                          "SSE_KEYS_PER_READER": str(KEYS_PER_READER_A)})
    b = LiveServer.start({"SSE_REDIS_CLIENT_NAME": sse_client_name,
                          "SSE_PING_SECONDS": "1", "SSE_SEND_TIMEOUT_SECONDS": "2"})
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def replica_a(replicas) -> LiveServer:
    return replicas[0]


@pytest.fixture
def replica_b(replicas) -> LiveServer:
    return replicas[1]


@pytest.fixture
def causes(redis, settings) -> Causes:
    return Causes(redis, settings)


class Events:
    def __init__(self, source) -> None:
        self.response: httpx.Response = source.response
        self._iterator = source.aiter_sse()

    async def next(self, within: float = READ_TIMEOUT) -> ServerSentEvent:
        async with asyncio.timeout(within):
            return await anext(self._iterator)

    async def take(self, n: int) -> list[ServerSentEvent]:
        return [await self.next() for _ in range(n)]

    async def rest(self, within: float = READ_TIMEOUT) -> list[ServerSentEvent]:
        """Everything until the server ends the stream."""
        async with asyncio.timeout(within):
            return [event async for event in self._iterator]


@asynccontextmanager
async def stream(server: LiveServer, token: str, *, last_event_id: str | None = None,
                 via_query: bool = False, http: httpx.AsyncClient | None = None,
                 ) -> AsyncIterator[Events]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    params = {"access_token": token} if via_query else {}
    if not via_query:
        headers["Authorization"] = f"Bearer {token}"
    async with _client(server, http) as client, aconnect_sse(
        client, "GET", PATH, headers=headers, params=params
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        yield Events(source)


@asynccontextmanager
async def _client(server: LiveServer, http: httpx.AsyncClient | None):
    if http is not None:
        yield http
        return
    async with httpx.AsyncClient(base_url=server.url, timeout=READ_TIMEOUT) as client:
        yield client


async def open_streams_gauge(server: LiveServer) -> float:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(response.text):
        if family.name == "mentorship_sse_open_streams":
            return family.samples[0].value
    raise AssertionError("mentorship_sse_open_streams is not exported")


async def streaming_connections(redis, name: str) -> list[dict]:
    return [client for client in await redis.client_list() if client.get("name") == name]


async def eventually(predicate, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.1)


async def transactions_open_as_api(system_db) -> int:
    async with system_db.transaction(None) as session:
        return await session.scalar(text(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and usename = :role and state like 'idle in transaction%'"
        ), {"role": APP_DB_ROLE})


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return [line for line in lines if isinstance(line, dict)]


def envelope_of(event: ServerSentEvent) -> dict[str, Any]:
    return json.loads(event.data)


# --- the stream -----------------------------------------------------------------------------

async def test_snapshot_first_then_events_in_order(replica_a, factory, causes, settings, redis):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    _, old_id = (await causes.any(mentor))[0]  # before connecting: in the snapshot, not replayed

    async with stream(replica_a, factory.token(mentor)) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        snapshot = await events.next()
        assert snapshot.event == "snapshot"
        assert snapshot.id == old_id  # resuming from here continues right after the snapshot
        assert snapshot.retry == settings.sse_retry_ms
        body = json.loads(snapshot.data)
        # The same body as GET /api/v1/mentor/dashboard.
        assert {"workqueue", "today_sessions", "at_risk_mentees", "capacity",
                "generated_at"} <= body.keys()
        assert body["capacity"]["weekly_slots_total"] == mentor.mentor_capacity_weekly

        booked = await causes.session_booked(mentor, mentee)
        submitted = await causes.mission_submitted(mentor, mentee)
        received = await events.take(2)

    assert [(e.event, e.id) for e in received] == [booked, submitted]
    assert received[1].retry is None  # `retry:` is sent once per connection
    envelope = envelope_of(received[0])
    assert envelope["type"] == "session.scheduled" and envelope["source"] == "mentorship"
    assert envelope["refresh_priority"] == "high"
    assert envelope["data"]["mentee_id"] == str(mentee.id)
    assert set(envelope) == {"id", "type", "occurred_at", "source", "refresh_priority", "data"}


async def test_booking_and_mission_through_the_api_arrive_in_order(
        replica_a, factory, settings, redis, system_db):
    """End to end: the API commits (outbox), the real relay XADDs, the stream relays."""
    from app.services.events.relay import run_relay

    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    service = await factory.user("service")
    relay = asyncio.create_task(run_relay(system_db, redis, settings=settings, seconds=30))
    try:
        async with stream(replica_a, factory.token(mentor)) as events, \
                httpx.AsyncClient(base_url=replica_a.url, timeout=10) as http:
            assert (await events.next()).event == "snapshot"
            starts = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0,
                                                                     microsecond=0)
            booked = await http.post(
                "/api/v1/mentor/sessions", headers=factory.headers(mentor),
                json={"mentee_id": str(mentee.id), "starts_at": starts.isoformat(),
                      "duration_minutes": 30, "agenda": "e2e"})
            assert booked.status_code == 201, booked.text
            submission_id = str(uuid.uuid4())
            posted = await http.post(
                "/api/v1/events", headers=factory.headers(service),
                json={"id": str(uuid.uuid4()), "type": "mission.submitted",
                      "occurred_at": datetime.now(UTC).isoformat(), "source": "missions",
                      "data": {"submission_id": submission_id, "mentee_id": str(mentee.id),
                               "mission_id": str(uuid.uuid4()), "title": "Portfolio",
                               "submitted_at": datetime.now(UTC).isoformat(),
                               "url": "https://example.test/p"}})
            assert posted.status_code == 202, posted.text
            received = await events.take(2)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay

    assert [e.event for e in received] == ["session.scheduled", "workqueue.item_created"]
    assert envelope_of(received[0])["data"]["session_id"] == booked.json()["id"]
    assert envelope_of(received[1])["data"]["kind"] == "mission_review"
    ids = [parse_sse_id(e.id) for e in received]
    assert ids == sorted(ids) and ids[0][0] == ids[1][0]


async def test_snapshot_id_of_an_empty_stream_resumes_everything(replica_a, factory, causes):
    mentor = await factory.mentor()
    async with stream(replica_a, factory.token(mentor)) as events:
        snapshot = await events.next()
    assert snapshot.event == "snapshot" and parse_sse_id(snapshot.id)[1] == (0, 0)

    published = await causes.any(mentor, 2)
    async with stream(replica_a, factory.token(mentor), last_event_id=snapshot.id) as events:
        assert [(e.event, e.id) for e in await events.take(2)] == published


async def test_resume_with_last_event_id_gets_exactly_the_missed_events(replica_a, factory,
                                                                        causes, settings):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    async with stream(replica_a, factory.token(mentor)) as events:
        await events.next()  # snapshot
        seen = await causes.session_booked(mentor, mentee)
        assert (await events.next()).id == seen[1]

    missed = [await causes.session_booked(mentor, mentee),
              await causes.mission_submitted(mentor, mentee),
              await causes.session_booked(mentor, mentee)]

    async with stream(replica_a, factory.token(mentor), last_event_id=seen[1]) as events:
        replayed = await events.take(3)
        # Nothing else was queued before a later event: exactly those three, once each.
        later = await causes.mission_submitted(mentor, mentee)
        following = await events.next()

    assert [(e.event, e.id) for e in replayed] == missed
    assert replayed[0].retry == settings.sse_retry_ms  # no snapshot, so on the first event
    assert (following.event, following.id) == later


async def test_resume_point_trimmed_away_or_malformed_gets_a_fresh_snapshot(
        replica_a, factory, causes, redis, settings):
    mentor = await factory.mentor()
    published = await causes.any(mentor, 3)
    # The relay trims with MAXLEN ~; trimming exactly here makes the gap certain.
    await redis.xtrim(user_stream_key(settings, mentor.id), maxlen=1, approximate=False)
    first_id, last_id = published[0][1], published[-1][1]
    epoch, (ms, _) = parse_sse_id(last_id)
    other = "f" * 12 if epoch != "f" * 12 else "e" * 12
    for stale in (first_id, f"{epoch}-0-0", "garbage", "12", f"{epoch}-{ms + 10**9}-0",
                  "0-0", last_id.split("-", 1)[1], f"{other}-{ms}-0"):
        async with stream(replica_a, factory.token(mentor), last_event_id=stale) as events:
            snapshot = await events.next()
            assert (snapshot.event, snapshot.id) == ("snapshot", last_id), stale
            new = (await causes.any(mentor))[0]
            assert ((e := await events.next()).event, e.id) == new
            last_id = new[1]


@pytest.mark.parametrize("lost", ["everything", "the stream"])
async def test_a_resume_after_the_stream_was_lost_gets_a_fresh_snapshot(
        replica_a, factory, causes, redis, settings, lost):
    """Redis lost its data (or the stream key expired) and the relay has since written to
    a new stream: the old id is of another epoch, so the client is not silently resumed
    past the events that went with the old stream."""
    mentor = await factory.mentor()
    token = factory.token(mentor)
    async with stream(replica_a, token) as events:
        await events.next()  # snapshot
        seen = (await causes.any(mentor))[0]
        assert ((e := await events.next()).event, e.id) == seen
    await causes.any(mentor, 2)  # missed, then lost
    keys = [user_stream_key(settings, mentor.id)]
    if lost == "everything":
        keys.append(user_stream_meta_key(settings, mentor.id))
    await redis.delete(*keys)
    after = await causes.any(mentor)
    async with stream(replica_a, token, last_event_id=seen[1]) as events:
        snapshot = await events.next()
        assert (snapshot.event, snapshot.id) == ("snapshot", after[0][1])
        assert parse_sse_id(snapshot.id)[0] != parse_sse_id(seen[1])[0]
        new = (await causes.any(mentor))[0]
        assert ((e := await events.next()).event, e.id) == new


async def test_two_replicas_share_nothing_but_redis(replica_a, replica_b, factory, causes):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    token = factory.token(mentor)
    async with stream(replica_a, token) as on_a, stream(replica_b, token) as on_b:
        await on_a.next(), await on_b.next()  # snapshots
        event = await causes.session_booked(mentor, mentee)
        got_a, got_b = await on_a.next(), await on_b.next()
    assert (got_a.event, got_a.id) == (got_b.event, got_b.id) == event
    assert got_a.data == got_b.data

    # Left replica A, reconnects to replica B: B resumes from A's id.
    missed = [await causes.mission_submitted(mentor, mentee),
              await causes.session_booked(mentor, mentee)]
    async with stream(replica_b, token, last_event_id=got_a.id) as on_b:
        assert [(e.event, e.id) for e in await on_b.take(2)] == missed


async def test_a_second_tab_resuming_from_further_back_gets_what_it_missed(
        replica_a, factory, causes):
    """The first tab's stream is already read live by the replica; a second tab of the
    same mentor resuming from an older id gets the entries in between, then live ones."""
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    token = factory.token(mentor)
    async with stream(replica_a, token) as first:
        await first.next()  # snapshot
        seen = [await causes.session_booked(mentor, mentee) for _ in range(3)]
        assert [(e.event, e.id) for e in await first.take(3)] == seen
        async with stream(replica_a, token, last_event_id=seen[0][1]) as second:
            assert [(e.event, e.id) for e in await second.take(2)] == seen[1:]
            live = await causes.mission_submitted(mentor, mentee)
            assert ((e := await second.next()).event, e.id) == live
            assert ((e := await first.next()).event, e.id) == live


async def test_streams_end_when_the_server_shuts_down(factory, settings):
    """SIGTERM: every open stream ends at once (the hub watches for the exit once per
    process), so uvicorn's graceful shutdown does not wait for the clients."""
    server = LiveServer.start()
    try:
        server.wait_ready()
        mentor = await factory.mentor()
        async with stream(server, factory.token(mentor)) as one, \
                stream(server, factory.token(mentor)) as two:
            await one.next(), await two.next()  # snapshots
            started = asyncio.get_running_loop().time()
            server.process.send_signal(signal.SIGTERM)
            assert await one.rest(within=10) == [] and await two.rest(within=10) == []
            assert asyncio.get_running_loop().time() - started < 5
        # uvicorn re-raises the signal once its graceful shutdown is complete.
        assert await asyncio.to_thread(server.process.wait, 15) == -signal.SIGTERM
        assert "Application shutdown complete" in server.logs()
    finally:
        server.stop()


async def test_access_token_in_the_query_works_and_is_never_logged(replica_a, factory, causes):
    mentor = await factory.mentor()
    token = factory.token(mentor)
    async with stream(replica_a, token, via_query=True) as events:
        assert (await events.next()).event == "snapshot"
        published = (await causes.any(mentor))[0]
        assert ((e := await events.next()).event, e.id) == published
    async with httpx.AsyncClient(base_url=replica_a.url) as http:
        # A rejected token must not be logged either.
        bad = token[:-4] + "AAAA"
        rejected = await http.get(PATH, params={"access_token": bad, "last_event_id": "1-0"})
    assert rejected.status_code == 401

    async def logged() -> bool:  # the access line of the rejected request is written
        return any(line.get("path") == PATH and line.get("status") == 401
                   for line in json_lines(replica_a.logs()))

    await eventually(logged)
    log = replica_a.logs()
    assert token not in log and bad not in log
    assert token.split(".")[2] not in log  # not even the signature


async def test_auth_problems_come_before_the_stream(replica_a, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    expired = factory.token(mentor, ttl=timedelta(seconds=-5))
    cases = [
        ({}, {}, 401, "missing_token"),
        ({"Authorization": f"Bearer {expired}"}, {}, 401, "token_expired"),
        ({}, {"access_token": expired}, 401, "token_expired"),
        ({}, {"access_token": "not-a-jwt"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {factory.token(mentee)}"}, {}, 403, "wrong_role"),
        ({}, {"access_token": factory.token(mentee)}, 403, "wrong_role"),
    ]
    async with httpx.AsyncClient(base_url=replica_a.url, timeout=READ_TIMEOUT) as http:
        for headers, params, status, code in cases:
            response = await http.get(PATH, headers=headers, params=params)
            assert response.status_code == status, (code, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == code


async def test_stream_ends_when_the_token_expires(replica_a, factory, redis, sse_client_name):
    mentor = await factory.mentor()
    token = factory.token(mentor, ttl=timedelta(seconds=3))
    started = asyncio.get_running_loop().time()
    async with stream(replica_a, token) as events:
        snapshot = await events.next()
        rest = await events.rest(within=15)
    elapsed = asyncio.get_running_loop().time() - started
    assert [e.event for e in rest] == ["token_expired"]
    assert rest[0].id == snapshot.id  # a resume with a new token continues from here
    assert 1.0 < elapsed < 12.0

    # Ended by the server (not by a disconnect): its Redis connection is closed too.
    async def released() -> bool:
        return (await streaming_connections(redis, sse_client_name) == []
                and await open_streams_gauge(replica_a) == 0)

    await eventually(released)


async def test_ping_comments_keep_the_connection_alive(replica_b, factory):
    mentor = await factory.mentor()
    headers = {"Authorization": f"Bearer {factory.token(mentor)}"}
    async with httpx.AsyncClient(base_url=replica_b.url, timeout=READ_TIMEOUT) as http, \
            http.stream("GET", PATH, headers=headers) as response:
        pings = 0
        async with asyncio.timeout(10):
            async for line in response.aiter_lines():
                pings += line.startswith(": ping")
                if pings == 2:
                    break
    assert pings == 2


async def test_redis_failure_ends_the_stream_and_the_client_resumes(
        replica_a, factory, causes, redis, sse_client_name):
    mentor = await factory.mentor()
    token = factory.token(mentor)
    async with stream(replica_a, token) as events:
        snapshot = await events.next()

        async def connected() -> bool:
            return len(await streaming_connections(redis, sse_client_name)) >= 1

        await eventually(connected)
        for client in await streaming_connections(redis, sse_client_name):
            await redis.execute_command("CLIENT", "KILL", "ID", client["id"])
        assert await events.rest() == []  # ended cleanly, no error event, no 500
    published = await causes.any(mentor, 2)
    async with stream(replica_a, token, last_event_id=snapshot.id) as events:
        assert [(e.event, e.id) for e in await events.take(2)] == published


async def test_200_clients_leave_nothing_behind(replica_a, factory, redis, sse_client_name,
                                                system_db):
    """200 streams of 50 mentors (4 tabs each): the 50 users' streams are read by
    ceil(50 / 16) = 4 Redis connections while open, and by none once everyone has left."""
    mentors = [await factory.mentor() for _ in range(50)]
    tokens = [factory.token(mentor) for mentor in mentors for _ in range(4)]

    async def gauge_zero() -> bool:
        return await open_streams_gauge(replica_a) == 0

    async def no_connections() -> bool:
        return await streaming_connections(redis, sse_client_name) == []

    # The earlier tests' streams on this replica are closed by their clients; the server
    # counts one down only once it has seen the disconnect, a moment later.
    await eventually(gauge_zero)
    await eventually(no_connections)
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=replica_a.url, timeout=60, limits=limits) as http:
        async def connect(stack, token) -> Events:
            events = await stack.enter_async_context(stream(replica_a, token, http=http))
            assert (await events.next(within=60)).event == "snapshot"
            return events  # kept referenced: a collected SSE iterator closes its response

        stacks = [AsyncExitStack() for _ in tokens]
        try:
            clients = await asyncio.gather(*(connect(stack, token)
                                             for stack, token in zip(stacks, tokens, strict=True)))
            assert len(clients) == 200
            assert await open_streams_gauge(replica_a) == 200

            async def readers_connected() -> bool:
                return len(await streaming_connections(redis, sse_client_name)) == 4

            await eventually(readers_connected)
            # The snapshots' transactions ended before streaming: no connection is held.
            assert await transactions_open_as_api(system_db) == 0
        finally:
            await asyncio.gather(*(stack.aclose() for stack in stacks))

    await eventually(gauge_zero)
    await eventually(no_connections)


def test_open_streams_gauge_sums_live_worker_processes(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR (several uvicorn workers), /metrics adds up the open
    streams of the live processes (`livesum`)."""
    script = (
        "from app.services.live.streams import OPEN_STREAMS\n"
        "from app.core.telemetry import process_registry\n"
        "from prometheus_client import generate_latest\n"
        "OPEN_STREAMS.inc(3)\n"
        "print(generate_latest(process_registry()).decode())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    output = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert "mentorship_sse_open_streams 3.0" in output


async def test_redis_down_is_a_503_problem_before_the_stream(settings, factory):
    # Answered before any byte of the stream, so the in-process transport is fine here.
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    application = create_app(broken)
    mentor = await factory.mentor()
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get(PATH, headers=factory.headers(mentor))
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "stream_unavailable"
    assert response.headers["retry-after"] == "5"


async def test_a_client_that_stops_reading_is_dropped(replica_b, factory, causes, redis,
                                                      sse_client_name):
    mentor = await factory.mentor()
    reader, writer = await asyncio.open_connection(*replica_b.url[7:].split(":"))
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                         4096)
    writer.write(f"GET {PATH} HTTP/1.1\r\nHost: t\r\n"
                 f"Authorization: Bearer {factory.token(mentor)}\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.readuntil(b"event: snapshot")).startswith(b"HTTP/1.1 200")
    reader._transport.pause_reading()  # stop reading: the kernel buffers fill up
    try:
        async def connected() -> bool:
            return await open_streams_gauge(replica_b) == 1

        await eventually(connected)
        big = "x" * 65536
        for _ in range(8):  # ~8 MiB queued for a client that takes nothing
            for _ in range(16):
                await publish(redis, causes.settings, mentor.id, "flag.raised", {"pad": big})

        async def dropped() -> bool:
            return (await open_streams_gauge(replica_b) == 0
                    and await streaming_connections(redis, sse_client_name) == [])

        await eventually(dropped, within=30)
    finally:
        writer.close()
