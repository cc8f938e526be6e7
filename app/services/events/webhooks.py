"""Webhook endpoints (managed by admins) and their signed, retried deliveries.

Deliveries are rows written by the relay for each published event and each matching
endpoint. A delivery worker claims due rows (`FOR UPDATE SKIP LOCKED`, then a lease pushes
`next_attempt_at` past the request timeout, so the HTTP call runs outside any transaction
and a crashed worker's deliveries are retried), sends them and records every attempt.

Each attempt is signed the Standard Webhooks way with the `standardwebhooks` library over
the exact bytes sent: `webhook-id` (the event id, stable across retries so receivers can
dedupe), `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`. No redirect is
followed (a 3xx is a failed attempt). Only vetted addresses are reached (no SSRF:
app/services/events/destinations.py), and an attempt without an HTTP response is recorded
as one message whatever the cause (the detail goes to the worker's log). Failures are
retried with exponential backoff and equal jitter (base x 2^n, capped, half of it random)
until the delivery is `webhook_max_age_hours` old (at least a day), then it is `failed`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import Counter
from sqlalchemy import select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from app.config import Settings
from app.core.db import Database
from app.core.errors import NotFound, Unprocessable
from app.core.instants import BoundedDatetime
from app.core.pagination import Keyset
from app.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.schemas.events import WebhookCreate
from app.services.events.destinations import DestinationRefused, VettedTransport, check_url

log = structlog.get_logger("app.webhooks")

# Served by the workers' /metrics (the alert rules in deploy/prometheus/alerts.yml use it).
ATTEMPTS = Counter("mentorship_webhook_attempts",
                   "Webhook delivery attempts by outcome: delivered, retry (failed, tried "
                   "again later) or failed (failed for good).", ["outcome"])

USER_AGENT = "mentorship-webhooks/1.0"


# --- endpoints (admin routes) ---------------------------------------------------------------

def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_endpoint(
    session: AsyncSession, *, endpoint: WebhookCreate, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its secret (the only time the secret is shown). A URL that
    is or resolves to an address webhooks may not reach: 422 `webhook_url_not_allowed`."""
    try:
        await check_url(str(endpoint.url), allow_private=settings.webhooks_may_reach_private)
    except DestinationRefused as exc:
        raise Unprocessable(f"Webhooks may not be sent to {exc.reason}.",
                            code="webhook_url_not_allowed") from None
    secret = new_secret()
    row = WebhookEndpoint(
        id=uuid.uuid4(), url=str(endpoint.url), secret=secret,
        event_types=endpoint.event_types, description=endpoint.description,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row, secret


# (created_at, id) of the last row of the previous page.
ENDPOINTS_CURSOR = Keyset("webhooks", BoundedDatetime, uuid.UUID)
DELIVERIES_CURSOR = Keyset("deliveries", BoundedDatetime, uuid.UUID)


async def list_endpoints(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[WebhookEndpoint], str | None]:
    """Active endpoints, oldest first."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.active)
    if after := ENDPOINTS_CURSOR.decode(cursor):
        query = query.where(tuple_(WebhookEndpoint.created_at, WebhookEndpoint.id) > after)
    rows = list(await session.scalars(
        query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id).limit(limit + 1)
    ))
    if len(rows) > limit:
        last = rows[limit - 1]
        return rows[:limit], ENDPOINTS_CURSOR.encode(last.created_at, last.id)
    return rows, None


async def delete_endpoint(session: AsyncSession, *, endpoint_id: uuid.UUID) -> None:
    """Deactivate the endpoint: no new deliveries, its delivery history stays visible to
    admins, and the delivery worker gives up its pending deliveries (admins only read
    deliveries; the worker writes them)."""
    deleted = await session.scalar(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.active)
        .values(active=False).returning(WebhookEndpoint.id)
    )
    if deleted is None:
        raise NotFound("No such webhook endpoint")


async def list_deliveries(
    session: AsyncSession, *, endpoint_id: uuid.UUID, status: str | None, limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], dict[uuid.UUID, list[WebhookAttempt]], str | None]:
    """An endpoint's deliveries, newest first, each with its attempts (oldest first)."""
    if await session.get(WebhookEndpoint, endpoint_id) is None:
        raise NotFound("No such webhook endpoint")
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if after := DELIVERIES_CURSOR.decode(cursor):
        query = query.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < after)
    rows = list(await session.scalars(
        query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit + 1)
    ))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = DELIVERIES_CURSOR.encode(rows[-1].created_at, rows[-1].id)
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in await session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(attempts))
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return rows, attempts, next_cursor


# --- delivering -----------------------------------------------------------------------------

# What the delivery log (an admin API) says of any attempt that got no HTTP response:
# refused, reset, timed out, TLS or protocol errors alike, so that the log of an endpoint
# pointed at some host and port is no port scanner. The worker's log has the detail.
NO_RESPONSE = "no HTTP response (connection failed, timed out or not HTTP)"


@dataclass
class Outcome:
    status_code: int | None
    error: str | None  # recorded, visible to admins
    duration_ms: int
    detail: str | None = None  # logged only

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Claimed:
    id: uuid.UUID
    event_id: uuid.UUID
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    url: str
    secret: str
    active: bool


def signed_request(
    *, secret: str, event_id: uuid.UUID, payload: dict[str, Any], at: datetime
) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and the headers that sign them."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    msg_id = str(event_id)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body.decode())
    return body, {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


async def send(
    http: httpx.AsyncClient, *, url: str, body: bytes, headers: dict[str, str],
    settings: Settings,
) -> Outcome:
    started = time.perf_counter()
    try:
        # httpx's timeout bounds each phase; this bounds the whole attempt.
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            response = await http.post(url, content=body, headers=headers,
                                       timeout=settings.webhook_timeout_seconds,
                                       follow_redirects=False)
        status_code, error, detail = response.status_code, None, None
        if not 200 <= status_code < 300:
            error = detail = f"HTTP {status_code}"
            if 300 <= status_code < 400:
                error += " (redirects are not followed)"
    except DestinationRefused as exc:
        status_code, error = None, f"destination not allowed: {exc.reason}"
        detail = error
    except (httpx.TimeoutException, TimeoutError):
        status_code, error = None, NO_RESPONSE
        detail = f"timeout after {settings.webhook_timeout_seconds:g} s"
    except Exception as exc:  # connection refused, TLS, DNS, invalid URL...: a failed try
        status_code, error, detail = None, NO_RESPONSE, f"{type(exc).__name__}: {exc}"[:1000]
    return Outcome(status_code, error, round((time.perf_counter() - started) * 1000), detail)


def next_delay(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempts + 1`: exponential, capped, with equal jitter."""
    ceiling = min(settings.webhook_backoff_max_seconds,
                  settings.webhook_backoff_base_seconds * 2 ** min(attempts - 1, 30))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


CLAIM_DUE = text("""
    UPDATE webhook_deliveries d
       SET next_attempt_at = :now + make_interval(secs => :lease)
      FROM webhook_endpoints e
     WHERE e.id = d.endpoint_id
       AND d.id IN (SELECT id FROM webhook_deliveries
                     WHERE status = 'pending' AND next_attempt_at <= :now
                     ORDER BY next_attempt_at
                     LIMIT :limit
                       FOR UPDATE SKIP LOCKED)
 RETURNING d.id, d.event_id, d.payload, d.attempts, d.created_at, e.url, e.secret, e.active
""")


async def claim_due(
    database: Database, *, settings: Settings, limit: int, now: datetime | None = None
) -> list[Claimed]:
    async with database.transaction(None) as session:
        rows = (await session.execute(CLAIM_DUE, {
            "now": now or datetime.now(UTC), "limit": limit,
            "lease": settings.webhook_timeout_seconds + 30,
        })).mappings().all()
    return [Claimed(**row) for row in rows]


async def deliver(
    database: Database, http: httpx.AsyncClient, delivery: Claimed, *, settings: Settings,
    now: datetime | None = None,
) -> Outcome:
    """One attempt of one claimed delivery, recorded with its outcome and next step."""
    if not delivery.active:
        outcome = Outcome(None, "endpoint deleted", 0)
    else:
        body, headers = signed_request(secret=delivery.secret, event_id=delivery.event_id,
                                       payload=delivery.payload, at=datetime.now(UTC))
        outcome = await send(http, url=delivery.url, body=body, headers=headers,
                             settings=settings)
    now = now or datetime.now(UTC)
    attempts = delivery.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_status_code": outcome.status_code,
                              "last_error": outcome.error}
    if outcome.ok:
        values.update(status="delivered", delivered_at=now)
    elif not delivery.active or now - delivery.created_at >= timedelta(
        hours=settings.webhook_max_age_hours
    ):
        values.update(status="failed")
    else:
        values.update(next_attempt_at=now + timedelta(seconds=next_delay(attempts, settings)))
    async with database.transaction(None) as session:
        session.add(WebhookAttempt(delivery_id=delivery.id, status_code=outcome.status_code,
                                   error=outcome.error, duration_ms=outcome.duration_ms))
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.status == "pending")
            .values(**values)
        )
    ATTEMPTS.labels("delivered" if outcome.ok else values.get("status", "retry")).inc()
    if not outcome.ok:
        log.info("webhook_attempt_failed", delivery_id=str(delivery.id), attempts=attempts,
                 error=outcome.detail or outcome.error, status=values.get("status", "pending"))
    return outcome


GIVE_UP_REMOVED = text("""
    UPDATE webhook_deliveries d SET status = 'failed', last_error = 'endpoint deleted'
      FROM webhook_endpoints e
     WHERE e.id = d.endpoint_id AND NOT e.active AND d.status = 'pending'
""")


async def give_up_removed_endpoints(database: Database) -> int:
    """Pending deliveries of deleted endpoints become `failed` (whatever their next try)."""
    async with database.transaction(None) as session:
        return (await session.execute(GIVE_UP_REMOVED)).rowcount


async def deliver_due(
    database: Database, http: httpx.AsyncClient, *, settings: Settings,
    limit: int | None = None, now: datetime | None = None,
) -> list[Outcome]:
    """Claim the due deliveries and attempt them concurrently (tests drive this)."""
    await give_up_removed_endpoints(database)
    claimed = await claim_due(database, settings=settings,
                              limit=limit or settings.webhook_batch_size, now=now)
    return list(await asyncio.gather(
        *(deliver(database, http, d, settings=settings, now=now) for d in claimed)
    ))


def http_client(settings: Settings) -> httpx.AsyncClient:
    """Connects only to vetted addresses (app/services/events/destinations.py)."""
    transport = VettedTransport(allow_private=settings.webhooks_may_reach_private)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                             timeout=settings.webhook_timeout_seconds,
                             headers={"user-agent": USER_AGENT})


async def run_deliveries(
    database: Database, *, settings: Settings, seconds: float | None = None,
    until_idle: bool = False,
) -> int:
    """Deliver until `seconds` have passed (forever if None), or with `until_idle` until
    nothing is due and nothing is in flight: up to `webhook_batch_size` in flight, refilled
    as each finishes (a slow receiver does not hold up the others). Returns attempts made."""
    deadline = None if seconds is None else time.monotonic() + seconds
    in_flight: set[asyncio.Task[Outcome]] = set()
    attempts = 0
    swept = 0.0
    async with http_client(settings) as http:
        try:
            while deadline is None or time.monotonic() < deadline:
                if time.monotonic() - swept > 10:
                    swept = time.monotonic()
                    try:
                        await give_up_removed_endpoints(database)
                    except Exception:
                        log.exception("webhook_sweep_failed")
                free = settings.webhook_batch_size - len(in_flight)
                claimed = 0
                if free > 0:
                    try:
                        for delivery in await claim_due(database, settings=settings, limit=free):
                            claimed += 1
                            in_flight.add(asyncio.create_task(
                                deliver(database, http, delivery, settings=settings)))
                    except Exception:  # database blip: keep the loop alive
                        log.exception("webhook_claim_failed")
                if until_idle and not claimed and not in_flight:
                    break
                if in_flight:
                    done, in_flight = await asyncio.wait(
                        in_flight, timeout=settings.webhook_poll_seconds,
                        return_when=asyncio.FIRST_COMPLETED)
                    attempts += len(done)
                    for task in done:
                        if task.exception() is not None:
                            log.error("webhook_delivery_crashed", error=repr(task.exception()))
                else:
                    await asyncio.sleep(settings.webhook_poll_seconds)
            if in_flight:
                await asyncio.wait(in_flight)
                attempts += len(in_flight)
        finally:
            # Stopped (cancelled): the attempts in flight stop too; their lease lets them
            # be retried later, never lost.
            for task in in_flight:
                task.cancel()
    return attempts
