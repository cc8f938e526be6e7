"""Webhook endpoints (admin routes) and signed deliveries to a real HTTP receiver on
127.0.0.1 that verifies every request with the `standardwebhooks` library."""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.core.outbox import emit
from app.services.events.jobs import deliver_webhooks
from app.services.events.webhooks import NO_RESPONSE, deliver_due, http_client, next_delay
from tests.support.events_helpers import (
    mission_submitted,
    relay_until_published,
    rows,
    service_headers,
)

ADMIN_URL = "/api/v1/admin/webhooks"


class Receiver:
    """A webhook receiver as a customer would write it: verify, then act. `script` lists the
    status codes to answer, in order (then 200); `delay` makes it slow."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.script: list[int] = []
        self.delay = 0.0
        self.requests: list[dict] = []
        self.verified: list[dict] = []
        self.refused: list[str] = []
        self.redirect_hits = 0
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"]),
                                     Route("/moved", self.moved, methods=["POST"]),
                                     Route("/elsewhere", self.elsewhere, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        self.requests.append({"body": body, "headers": headers})
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            self.refused.append(str(exc))
            return JSONResponse({"error": "bad signature"}, status_code=400)
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            self.verified.append(payload)
        return Response(status_code=status)

    async def moved(self, request: Request) -> Response:
        return RedirectResponse(f"{self.base}/elsewhere", status_code=307)

    async def elsewhere(self, request: Request) -> Response:
        self.redirect_hits += 1
        return Response(status_code=200)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def receiver():
    receiver = Receiver()
    server = uvicorn.Server(uvicorn.Config(receiver.app, host="127.0.0.1", port=receiver.port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "receiver failed to start"
        await asyncio.sleep(0.01)
    yield receiver
    server.should_exit = True
    await task


async def deliver_ours(system_db, http, settings, *endpoint_ids: str, **kw):
    """`deliver_due`, after pushing back deliveries to endpoints that other tests left active
    (a test's receiver is the only one answering; others would hold the attempts up)."""
    await defer_foreign_deliveries(system_db, endpoint_ids)
    return await deliver_due(system_db, http, settings=settings, limit=1000, **kw)


async def defer_foreign_deliveries(system_db, endpoint_ids) -> None:
    async with system_db.transaction(None) as session:
        await session.execute(text(
            "update webhook_deliveries set next_attempt_at = now() + interval '1 day' "
            "where status = 'pending' and endpoint_id <> all(:ids)"),
            {"ids": [uuid.UUID(str(i)) for i in endpoint_ids]})


async def emit_and_relay(factory, system_db, redis, settings, type_="flag.raised") -> uuid.UUID:
    event_id = await factory.run(emit, type=type_, data={"flag_id": str(uuid.uuid4())},
                                 recipients=[uuid.uuid4()])
    await relay_until_published(system_db, redis, settings, [event_id])
    return event_id


async def delivery(system_db, event_id, endpoint_id) -> object:
    [row] = await rows(system_db, "select * from webhook_deliveries where event_id = :e "
                                  "and endpoint_id = :p", e=event_id, p=uuid.UUID(endpoint_id))
    return row


async def force_due(system_db, delivery_id) -> None:
    async with system_db.transaction(None) as session:
        await session.execute(text("update webhook_deliveries set next_attempt_at = now() "
                                   "where id = :i"), {"i": delivery_id})


async def list_all(client, admin) -> list[dict]:
    """Every page of GET /admin/webhooks, with a small page size."""
    items, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(ADMIN_URL, params=params, headers=admin)).json()
        assert len(page["items"]) <= 2
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


class TestAdminRoutes:
    async def test_list_pages_through_every_endpoint_once(self, client, admin, endpoints):
        created = [(await endpoints(f"https://hooks.example.com/{n}"))["id"] for n in range(5)]
        listed = [e["id"] for e in await list_all(client, admin)]
        assert len(listed) == len(set(listed))
        assert [i for i in listed if i in created] == created  # oldest first
        bad = await client.get(ADMIN_URL, params={"cursor": "garbage"}, headers=admin)
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"

    async def test_create_shows_secret_once_list_and_delete(self, client, admin, endpoints):
        created = await endpoints("https://hooks.example.com/in", event_types=["session.*"],
                                  description="calendar sync")
        assert created["secret"].startswith("whsec_")
        Webhook(created["secret"])  # a secret the library accepts
        assert created["event_types"] == ["session.*"]
        listed = await list_all(client, admin)
        mine = [e for e in listed if e["id"] == created["id"]]
        assert len(mine) == 1 and "secret" not in mine[0]

        response = await client.delete(f"{ADMIN_URL}/{created['id']}", headers=admin)
        assert response.status_code == 204
        assert created["id"] not in [e["id"] for e in await list_all(client, admin)]
        assert (await client.delete(f"{ADMIN_URL}/{created['id']}",
                                    headers=admin)).status_code == 404

    @pytest.mark.parametrize("body", [
        {"url": "https://user:pass@hooks.example.com/in"},
        {"url": "https://token@hooks.example.com/in"},
        {"url": "ftp://hooks.example.com/in"},
        {"url": "javascript:alert(1)"},
        {"url": "not a url"},
        {"url": "https://hooks.example.com/in", "event_types": ["mission.submitted"]},
        {"url": "https://hooks.example.com/in", "event_types": ["nope.*"]},
    ])
    async def test_invalid_endpoints_are_422(self, client, admin, body):
        response = await client.post(ADMIN_URL, json=body, headers=admin)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"

    @pytest.mark.parametrize("role", ["director", "mentor", "service"])
    async def test_only_admins(self, client, factory, role):
        headers = (await factory.role_headers(role))
        assert (await client.get(ADMIN_URL, headers=headers)).status_code == 403
        assert (await client.post(ADMIN_URL, json={"url": "https://a.example.com"},
                                  headers=headers)).status_code == 403


class TestDelivery:
    async def test_every_delivery_verifies_with_standardwebhooks(
        self, client, factory, admin, system_db, redis, settings, receiver, endpoints
    ):
        endpoint = await endpoints(f"{receiver.base}/hook", event_types=["workqueue.*"])
        ignored = await endpoints(f"{receiver.base}/hook", event_types=["flag.raised"])
        receiver.secret = endpoint["secret"]
        mentor, mentees = await factory.mentor_with_mentees(3)
        events = [mission_submitted(m.id) for m in mentees]
        assert (await client.post("/api/v1/events", json={"events": events},
                                  headers=(await service_headers(factory)))).status_code == 202
        outbox = [r.id for r in await rows(system_db, "select id from outbox_events where "
                                                      ":m = any(recipients)", m=mentor.id)]
        await relay_until_published(system_db, redis, settings, outbox)

        async with http_client(settings) as http:
            outcomes = await deliver_ours(system_db, http, settings, endpoint["id"])
        assert [o.ok for o in outcomes] == [True] * 3
        assert receiver.refused == []
        assert sorted(p["id"] for p in receiver.verified) == sorted(map(str, outbox))
        assert {p["type"] for p in receiver.verified} == {"workqueue.item_created"}
        for request in receiver.requests:  # webhook-id is the event id
            assert request["headers"]["webhook-id"] in {str(i) for i in outbox}
            assert request["headers"]["webhook-signature"].startswith("v1,")
        assert await rows(system_db, "select id from webhook_deliveries where endpoint_id = :p",
                          p=uuid.UUID(ignored["id"])) == []

        page = (await client.get(f"{ADMIN_URL}/{endpoint['id']}/deliveries",
                                 headers=admin)).json()
        assert len(page["items"]) == 3
        for item in page["items"]:
            assert (item["status"], item["attempts"], item["last_status_code"]) == (
                "delivered", 1, 200)
            [attempt] = item["attempt_log"]
            assert attempt["status_code"] == 200 and attempt["duration_ms"] >= 0

    async def test_receiver_failing_three_times_gets_the_event_on_the_fourth_try(
        self, factory, client, admin, system_db, redis, settings, receiver, endpoints
    ):
        endpoint = await endpoints(f"{receiver.base}/hook")
        receiver.secret = endpoint["secret"]
        receiver.script = [500, 503, 502]
        event_id = await emit_and_relay(factory, system_db, redis, settings)
        row = await delivery(system_db, event_id, endpoint["id"])
        # A minute's base: 'not due yet' below must not depend on how fast this machine
        # runs the checks (with the default 5 s, the first retry may be 2.5 s away).
        slow = settings.model_copy(update={"webhook_backoff_base_seconds": 60.0})

        async with http_client(slow) as http:
            for attempt in range(1, 5):
                outcomes = await deliver_ours(system_db, http, slow, endpoint["id"])
                assert len(outcomes) == 1, f"attempt {attempt} was not due"
                row = await delivery(system_db, event_id, endpoint["id"])
                assert row.attempts == attempt
                if attempt < 4:
                    assert row.status == "pending"
                    wait = row.next_attempt_at - datetime.now(UTC)
                    assert timedelta(0) < wait <= timedelta(
                        seconds=slow.webhook_backoff_base_seconds * 2 ** (attempt - 1) + 1)
                    # Not due yet: the next pass does not touch it.
                    assert await deliver_ours(system_db, http, slow, endpoint["id"]) == []
                    assert (await delivery(system_db, event_id, endpoint["id"])).attempts == \
                        attempt
                    await force_due(system_db, row.id)
        assert (row.status, row.last_status_code) == ("delivered", 200)
        assert [p["id"] for p in receiver.verified] == [str(event_id)]
        # Same webhook-id on every try (receivers dedupe on it), fresh signature each time.
        assert {r["headers"]["webhook-id"] for r in receiver.requests} == {str(event_id)}
        assert receiver.refused == []

        page = (await client.get(f"{ADMIN_URL}/{endpoint['id']}/deliveries",
                                 headers=admin)).json()
        [item] = page["items"]
        assert [a["status_code"] for a in item["attempt_log"]] == [500, 503, 502, 200]
        assert [a["error"] for a in item["attempt_log"]] == [
            "HTTP 500", "HTTP 503", "HTTP 502", None]

    async def test_gives_up_once_the_delivery_is_older_than_the_max_age(
        self, factory, system_db, redis, settings, receiver, endpoints
    ):
        endpoint = await endpoints(f"{receiver.base}/hook")
        receiver.secret = endpoint["secret"]
        receiver.script = [500, 500]
        event_id = await emit_and_relay(factory, system_db, redis, settings)
        row = await delivery(system_db, event_id, endpoint["id"])
        async with http_client(settings) as http:
            await deliver_ours(system_db, http, settings, endpoint["id"])
            assert (await delivery(system_db, event_id, endpoint["id"])).status == "pending"
            async with system_db.transaction(None) as session:  # a day and more later
                await session.execute(text(
                    "update webhook_deliveries set created_at = now() - make_interval("
                    "hours => :h), next_attempt_at = now() where id = :i"),
                    {"h": settings.webhook_max_age_hours, "i": row.id})
            await deliver_ours(system_db, http, settings, endpoint["id"])
        row = await delivery(system_db, event_id, endpoint["id"])
        assert (row.status, row.attempts, row.last_error) == ("failed", 2, "HTTP 500")
        assert settings.webhook_max_age_hours >= 24

    async def test_redirects_are_not_followed(
        self, factory, system_db, redis, settings, receiver, endpoints
    ):
        endpoint = await endpoints(f"{receiver.base}/moved")
        event_id = await emit_and_relay(factory, system_db, redis, settings)
        async with http_client(settings) as http:
            await deliver_ours(system_db, http, settings, endpoint["id"])
        row = await delivery(system_db, event_id, endpoint["id"])
        assert (row.status, row.last_status_code) == ("pending", 307)
        assert "redirect" in row.last_error
        assert receiver.redirect_hits == 0

    async def test_a_slow_receiver_times_out(
        self, factory, system_db, redis, settings, receiver, endpoints
    ):
        endpoint = await endpoints(f"{receiver.base}/hook")
        receiver.secret = endpoint["secret"]
        receiver.delay = 2.0
        event_id = await emit_and_relay(factory, system_db, redis, settings)
        fast = settings.model_copy(update={"webhook_timeout_seconds": 0.3})
        async with http_client(fast) as http:
            await deliver_ours(system_db, http, fast, endpoint["id"])
        row = await delivery(system_db, event_id, endpoint["id"])
        assert row.status == "pending" and row.last_status_code is None
        assert row.last_error == NO_RESPONSE  # the cause ("timeout") is in the worker's log
        [attempt] = await rows(system_db, "select duration_ms from webhook_attempts "
                                          "where delivery_id = :d", d=row.id)
        assert 250 <= attempt.duration_ms < 2000

    async def test_deleting_an_endpoint_gives_up_its_pending_deliveries(
        self, client, admin, factory, system_db, redis, settings, endpoints
    ):
        endpoint = await endpoints("http://127.0.0.1:9/never")
        event_id = await emit_and_relay(factory, system_db, redis, settings)
        assert (await client.delete(f"{ADMIN_URL}/{endpoint['id']}",
                                    headers=admin)).status_code == 204
        async with http_client(settings) as http:  # the delivery worker's next pass
            await deliver_ours(system_db, http, settings, endpoint["id"])
        row = await delivery(system_db, event_id, endpoint["id"])
        assert (row.status, row.last_error, row.attempts) == ("failed", "endpoint deleted", 0)
        # Its log stays readable.
        page = await client.get(f"{ADMIN_URL}/{endpoint['id']}/deliveries?status=failed",
                                headers=admin)
        assert page.status_code == 200 and len(page.json()["items"]) == 1


async def test_the_workers_deliveries_drain_until_idle(factory, system_db, redis, settings,
                                                       receiver, endpoints):
    endpoint = await endpoints(f"{receiver.base}/hook")
    receiver.secret = endpoint["secret"]
    event_ids = [await emit_and_relay(factory, system_db, redis, settings) for _ in range(3)]
    await defer_foreign_deliveries(system_db, [endpoint["id"]])
    ctx = {"settings": settings, "db": system_db}
    assert await asyncio.wait_for(deliver_webhooks(ctx, until_idle=True), 30) >= 3
    assert sorted(p["id"] for p in receiver.verified) == sorted(map(str, event_ids))


def test_backoff_is_exponential_with_jitter_and_a_cap(settings):
    rng = random.Random(7)
    base, cap = settings.webhook_backoff_base_seconds, settings.webhook_backoff_max_seconds
    for attempts in range(1, 40):
        ceiling = min(cap, base * 2 ** (attempts - 1))
        delays = [next_delay(attempts, settings, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    # With the largest delays, a day still holds many attempts before giving up.
    elapsed, attempts = 0.0, 0
    while elapsed < 24 * 3600:
        attempts += 1
        elapsed += min(cap, base * 2 ** (attempts - 1))
    assert attempts > 20
