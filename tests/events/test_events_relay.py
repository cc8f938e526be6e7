"""The outbox relay: every outbound event reaches the stream of every user it concerns, once,
with its `refresh_priority`; webhook deliveries are enqueued; Redis going away or a relay
killed with SIGKILL loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, text

from app.core.outbox import REFRESH_PRIORITY, emit
from app.core.redis import make_redis, user_stream_key
from app.main import create_app
from app.models import OutboxEvent, WebhookEndpoint
from app.services.events.jobs import relay_outbox
from app.services.events.relay import claim, marker_key, publish, relay_pass
from tests.support.events_helpers import (
    mission_submitted,
    relay_until_published,
    rows,
    scalar,
    service_headers,
)

ROOT = Path(__file__).resolve().parents[2]

# The contract's outbound types and how fast the student dashboard refreshes on each.
EXPECTED_REFRESH_PRIORITY = {
    "assignment.created": "high",
    "assignment.ended": "high",
    "session.scheduled": "high",
    "session.rescheduled": "high",
    "session.cancelled": "high",
    "session.completed": "normal",
    "mission.reviewed": "high",
    "flag.raised": "urgent",
    "flag.resolved": "normal",
    "workqueue.item_created": "normal",
    "workqueue.item_overdue": "high",
    "workqueue.item_completed": "normal",
    "capacity.exceeded": "high",
    "matching.run_finished": "normal",  # v2: to directors
    # v2 (CONTRACT.md "New outbound events")
    "flag.escalated": "urgent",
    "risk.raised": "high",
    "workqueue.item_escalated": "high",
    "user.deactivated": "high",
    "user.erased": "normal",
    "session.reminder": "normal",  # v2: 1440 and 60 minutes before, to both people
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test stops and restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def own_redis():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def stream_event_ids(redis, settings, user_id) -> list[str]:
    entries = await redis.xrange(user_stream_key(settings, user_id))
    return [json.loads(fields["data"])["id"] for _, fields in entries]


async def insert_outbox(system_db, count: int, users: list[uuid.UUID]) -> list[uuid.UUID]:
    """`count` outbox rows, each for two of `users`; returns their ids in order."""
    now = datetime.now(UTC)
    values = [
        {"id": uuid.uuid4(), "type": "workqueue.item_created", "occurred_at": now,
         "data": {"n": n}, "refresh_priority": "normal",
         "recipients": list(dict.fromkeys([users[n % len(users)],
                                           users[(n * 7 + 1) % len(users)]]))}
        for n in range(count)
    ]
    async with system_db.transaction(None) as session:
        for start in range(0, count, 1000):
            await session.execute(insert(OutboxEvent).values(values[start:start + 1000]))
    return [v["id"] for v in values]


async def expected_by_user(system_db, ids) -> dict[uuid.UUID, list[str]]:
    expected: dict[uuid.UUID, list[str]] = {}
    for row in await rows(system_db, "select id, recipients from outbox_events "
                                     "where id = any(:ids)", ids=list(ids)):
        for user_id in row.recipients:
            expected.setdefault(user_id, []).append(str(row.id))
    return expected


async def assert_each_stream_has_each_event_once(redis, settings, expected) -> None:
    for user_id, event_ids in expected.items():
        published = await stream_event_ids(redis, settings, user_id)
        duplicates = [i for i, n in Counter(published).items() if n > 1]
        assert not duplicates, f"published twice to {user_id}: {duplicates[:5]}"
        assert sorted(published) == sorted(event_ids)


class TestRefreshPriority:
    def test_every_contract_type_has_its_refresh_priority(self):
        assert REFRESH_PRIORITY == EXPECTED_REFRESH_PRIORITY

    @pytest.mark.parametrize(("event_type", "priority"), sorted(EXPECTED_REFRESH_PRIORITY.items()))
    async def test_relayed_envelope_carries_refresh_priority(
        self, factory, system_db, redis, settings, event_type, priority
    ):
        user_id = uuid.uuid4()
        event_id = await factory.run(emit, type=event_type, data={"k": "v"},
                                     recipients=[user_id])
        await relay_until_published(system_db, redis, settings, [event_id])
        [(entry_id, fields)] = await redis.xrange(user_stream_key(settings, user_id))
        envelope = json.loads(fields["data"])
        assert fields["type"] == event_type
        assert envelope == {
            "id": str(event_id), "type": event_type, "occurred_at": envelope["occurred_at"],
            "source": "mentorship", "refresh_priority": priority, "data": {"k": "v"},
        }
        assert datetime.fromisoformat(envelope["occurred_at"]).tzinfo is not None


class TestRelay:
    async def test_item_created_by_an_event_reaches_the_mentors_stream(
        self, client, factory, system_db, redis, settings
    ):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        body = mission_submitted(mentee.id)
        assert (await client.post("/api/v1/events", json=body,
                                  headers=(await service_headers(factory)))).status_code == 202
        [row] = await rows(system_db, "select id, published_at from outbox_events "
                                      "where :m = any(recipients)", m=mentor.id)
        assert row.published_at is None
        await relay_until_published(system_db, redis, settings, [row.id])
        [(_, fields)] = await redis.xrange(user_stream_key(settings, mentor.id))
        data = json.loads(fields["data"])
        assert data["type"] == "workqueue.item_created"
        assert data["data"]["mentee_id"] == str(mentee.id)
        assert data["data"]["kind"] == "mission_review"

    async def test_publishes_to_every_recipient_and_enqueues_matching_webhooks(
        self, factory, system_db, redis, settings
    ):
        users = [uuid.uuid4(), uuid.uuid4()]
        endpoints = {
            name: WebhookEndpoint(id=uuid.uuid4(), url="https://hooks.example/x", secret="whsec_"
                                  "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", event_types=types,
                                  active=active)
            for name, types, active in [("all", [], True), ("exact", ["flag.raised"], True),
                                        ("family", ["flag.*"], True),
                                        ("other", ["session.scheduled"], True),
                                        ("inactive", [], False)]
        }
        await factory.add(*endpoints.values())
        try:
            event_id = await factory.run(emit, type="flag.raised", data={"flag_id": "f"},
                                         recipients=users)
            await relay_until_published(system_db, redis, settings, [event_id])
        finally:
            async with system_db.transaction(None) as session:
                await session.execute(text("update webhook_endpoints set active = false "
                                           "where id = any(:ids)"),
                                      {"ids": [e.id for e in endpoints.values()]})
        for user_id in users:
            assert await stream_event_ids(redis, settings, user_id) == [str(event_id)]
        names = {e.id: n for n, e in endpoints.items()}
        deliveries = await rows(system_db, "select endpoint_id, payload, status from "
                                           "webhook_deliveries where event_id = :e "
                                           "and endpoint_id = any(:ours)",
                                e=event_id, ours=list(names))
        assert sorted(names[d.endpoint_id] for d in deliveries) == ["all", "exact", "family"]
        assert all(d.payload["refresh_priority"] == "urgent" and d.status == "pending"
                   for d in deliveries)

    async def test_a_batch_to_many_endpoints_is_settled(self, factory, system_db, redis,
                                                        settings):
        """Found by CI after the fuzzing run left endpoints active: a batch's deliveries in
        one INSERT bound 5 parameters a row, past the protocol's 32,767 (InterfaceError), so
        every relay pass failed and nothing was published again."""
        endpoints = [WebhookEndpoint(id=uuid.uuid4(), url="https://hooks.example/many",
                                     secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                     event_types=[]) for _ in range(40)]
        await factory.add(*endpoints)
        try:
            ids = await insert_outbox(system_db, 200, [uuid.uuid4()])
            await relay_until_published(system_db, redis, settings, ids)
        finally:
            async with system_db.transaction(None) as session:
                await session.execute(text("update webhook_endpoints set active = false "
                                           "where id = any(:ids)"),
                                      {"ids": [e.id for e in endpoints]})
        assert await scalar(system_db, "select count(*) from webhook_deliveries "
                                       "where event_id = any(:ids) and endpoint_id = any(:ours)",
                            ids=ids, ours=[e.id for e in endpoints]) == 200 * 40

    async def test_a_batch_is_claimed_in_creation_order(self, system_db, settings):
        """Found by the fuzzing run's backlog: UPDATE ... RETURNING gives rows in physical
        order, so an event updated after insertion (a retry) came out after newer ones."""
        user = uuid.uuid4()
        ids = []
        for n in range(3):
            async with system_db.transaction(None) as session:
                ids.append(await emit(session, type="session.scheduled", data={"n": n},
                                      recipients=[user]))
        async with system_db.transaction(None) as session:  # the oldest row moves
            await session.execute(text("update outbox_events set attempts = attempts "
                                       "where id = :id"), {"id": ids[0]})
        claimed = await claim(system_db, settings=settings, limit=10_000)
        async with system_db.transaction(None) as session:  # give the leases back
            await session.execute(text("update outbox_events set claimed_until = null "
                                       "where id = any(:ids)"), {"ids": [r.id for r in claimed]})
        assert [r.id for r in claimed if r.id in ids] == ids

    async def test_republishing_after_a_crash_adds_nothing_twice(
        self, system_db, redis, settings
    ):
        users = [uuid.uuid4() for _ in range(3)]
        ids = await insert_outbox(system_db, 30, users)
        # A relay claims and publishes, then dies before marking the rows published.
        rows_claimed = await claim(system_db, settings=settings, limit=10_000)
        mine = [r for r in rows_claimed if r.id in set(ids)]
        assert len(mine) == 30
        await publish(redis, mine[:20], settings=settings)
        async with system_db.transaction(None) as session:  # its lease runs out
            await session.execute(text("update outbox_events set claimed_until = now() "
                                       "- interval '1 second' where id = any(:ids)"), {"ids": ids})
        await relay_until_published(system_db, redis, settings, ids)
        await assert_each_stream_has_each_event_once(
            redis, settings, await expected_by_user(system_db, ids))

    async def test_concurrent_relays_claim_each_row_once(self, system_db, redis, settings):
        users = [uuid.uuid4() for _ in range(20)]
        ids = await insert_outbox(system_db, 1500, users)

        async def relay() -> None:
            while (await relay_pass(system_db, redis, settings=settings, limit=50)).claimed:
                pass

        await asyncio.gather(*(relay() for _ in range(4)))
        assert await scalar(system_db, "select count(*) from outbox_events where id = any(:ids) "
                                       "and (published_at is null or attempts <> 1)",
                            ids=ids) == 0
        await assert_each_stream_has_each_event_once(
            redis, settings, await expected_by_user(system_db, ids))

    async def test_the_workers_relay_drains_until_idle(self, system_db, redis, settings):
        users = [uuid.uuid4()]
        ids = await insert_outbox(system_db, 5, users)
        ctx = {"settings": settings, "db": system_db, "redis_app": redis}
        assert await asyncio.wait_for(relay_outbox(ctx, until_idle=True), 30) >= 5
        assert sorted(await stream_event_ids(redis, settings, users[0])) == sorted(map(str, ids))


async def test_redis_down_events_still_accepted_then_every_event_reaches_its_stream_once(
    settings, factory, system_db, own_redis
):
    local = settings.model_copy(update={"redis_url": own_redis.url, "relay_retry_max_seconds": 0.2})
    application = create_app(local)
    mentor, mentees = await factory.mentor_with_mentees(3)
    headers = (await service_headers(factory))
    redis = make_redis(local, socket_connect_timeout=1, socket_timeout=2)
    try:
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                # Some events while Redis is up, published at once.
                before = [mission_submitted(m.id) for m in mentees]
                assert (await http.post("/api/v1/events", json={"events": before},
                                        headers=headers)).status_code == 202
                ready = await http.get("/readyz")
                assert ready.status_code == 200
                await relay_until_published(system_db, redis, local, await outbox_ids(
                    system_db, mentor.id))

                own_redis.stop()
                assert (await http.get("/readyz")).status_code == 503
                during = [mission_submitted(mentees[n % 3].id) for n in range(30)]
                for n in range(0, 30, 10):  # accepted: Postgres only
                    response = await http.post("/api/v1/events",
                                               json={"events": during[n:n + 10]}, headers=headers)
                    assert response.status_code == 202
                    assert response.json()["accepted"] == 10
                # The relay keeps failing, without crashing and without losing rows.
                for _ in range(3):
                    result = await relay_pass(system_db, redis, settings=local)
                    assert result.published == 0
                    await asyncio.sleep(0.25)
                ids = await outbox_ids(system_db, mentor.id)
                assert len(ids) == 33
                unpublished = await rows(system_db, "select last_error from outbox_events "
                                                    "where id = any(:ids) and published_at is null",
                                         ids=ids)
                assert len(unpublished) == 30
                assert any(r.last_error and "Connection" in r.last_error for r in unpublished)

                own_redis.start()  # empty: no persistence
                await relay_until_published(system_db, redis, local, ids)
    finally:
        await redis.aclose()

    check = make_redis(local)
    try:
        published = await stream_event_ids(check, local, mentor.id)
        # The 3 published before the outage were lost with Redis' memory; the 30 written
        # during the outage all arrived, once each.
        assert len(published) == len(set(published)) == 30
        assert set(published) <= {str(i) for i in ids}
    finally:
        await check.aclose()


async def outbox_ids(system_db, user_id) -> list[uuid.UUID]:
    return [r.id for r in await rows(system_db, "select id from outbox_events "
                                                "where :u = any(recipients)", u=user_id)]


async def test_relay_killed_with_sigkill_mid_batch_loses_nothing(
    settings, system_db, redis
):
    users = [uuid.uuid4() for _ in range(50)]
    ids = await insert_outbox(system_db, 1500, users)
    env = {**os.environ, "RELAY_BATCH_SIZE": "100", "RELAY_LEASE_SECONDS": "1",
           "STREAM_MAXLEN": "100000"}

    async def unpublished() -> int:
        return await scalar(system_db, "select count(*) from outbox_events where id = any(:ids) "
                                       "and published_at is null", ids=ids)

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.services.events.relay", "120", cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while await unpublished() > len(ids) - 200:  # let it get going
            assert time.monotonic() < deadline and process.returncode is None
            await asyncio.sleep(0.01)
        # Hold row locks on a batch the relay has claimed: it still XADDs that batch, then
        # blocks marking it published. Kill it right there, between XADD and settle.
        async with system_db.sessions() as session, session.begin():
            held: list = []
            while not held:
                assert time.monotonic() < deadline and process.returncode is None
                held = list((await session.execute(text(
                    "select id, recipients from outbox_events where id = any(:ids) "
                    "and published_at is null and claimed_until > now() for update"),
                    {"ids": ids})).all())
            keys = [marker_key(settings, r.id, u) for r in held for u in r.recipients]
            while await redis.exists(*keys) < len(keys):  # the batch reached the streams
                assert time.monotonic() < deadline and process.returncode is None
                await asyncio.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    # Killed mid-batch: rows already in their streams, not marked published.
    held_ids = [r.id for r in held]
    assert await scalar(system_db, "select count(*) from outbox_events where id = any(:ids) "
                                   "and published_at is null", ids=held_ids) == len(held)
    assert 0 < await unpublished() < len(ids)

    # Restart (in-process): the killed relay's lease expires and its batch is taken over.
    local = settings.model_copy(update={"stream_maxlen": 100_000})
    await relay_until_published(system_db, redis, local, ids, within=60)
    await assert_each_stream_has_each_event_once(
        redis, local, await expected_by_user(system_db, ids))


async def test_the_relay_logs_its_start_stop_and_each_lease_takeover(system_db, redis, settings,
                                                                    monkeypatch):
    import structlog
    from structlog.testing import capture_logs

    from app.services.events import relay as relay_module

    # A fresh logger: the module's own was cached on first use (cache_logger_on_first_use),
    # which capture_logs cannot see into once an earlier test has logged through it.
    monkeypatch.setattr(relay_module, "log", structlog.get_logger("app.relay"))

    users = [uuid.uuid4()]
    ids = await insert_outbox(system_db, 3, users)
    short = settings.model_copy(update={"relay_lease_seconds": 0.2})
    # A relay claims the rows and vanishes (no publish, no settle): its lease lapses.
    await claim(system_db, settings=short, limit=500)
    await asyncio.sleep(0.3)
    with capture_logs() as logs:
        await relay_outbox({"settings": settings, "db": system_db, "redis_app": redis},
                           until_idle=True)
    events = [entry["event"] for entry in logs]
    assert events[0] == "outbox_relay_started" and events[-1] == "outbox_relay_stopped"
    (takeover,) = [entry for entry in logs if entry["event"] == "outbox_lease_takeover"]
    assert takeover["events"] >= 3
    assert sorted(await stream_event_ids(redis, settings, users[0])) == sorted(map(str, ids))
