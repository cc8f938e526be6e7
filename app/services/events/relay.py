"""The outbox relay: publishes committed outbox rows to the recipients' Redis streams and
enqueues their webhook deliveries. Any number of relays may run at once.

One pass:
1. claim: a short transaction sets a lease (`claimed_until`) on up to N unpublished rows
   whose lease is free or expired, chosen with `FOR UPDATE SKIP LOCKED` so relays never
   wait for each other or take the same rows;
2. publish every (event, recipient) pair to Redis in one pipeline;
3. a second transaction marks the published rows and inserts their webhook deliveries
   (`ON CONFLICT (endpoint_id, event_id) DO NOTHING`). Rows whose publish failed get a short
   backoff lease instead and are retried.
A relay killed anywhere loses nothing: its lease expires and another relay takes the rows.

No event twice in a stream: step 2 runs a Lua script per (event, recipient) that sets a
marker `<prefix>outbox:published:<event>:<user>` (NX, TTL `relay_dedupe_ttl_seconds`, longer
than the lease) and XADDs only if the marker was new, atomically (the same script keeps the
stream's epoch, app/core/streams.py). A relay re-publishing rows
after a crash, or retrying a pipeline whose reply was lost, skips what already reached the
stream. Markers and streams live in the same Redis: if Redis loses its data it loses both,
and the re-publish rightly adds the event once to the fresh stream. (Deterministic entry
ids cannot do this: XADD ids must increase per stream, and concurrent relays publish out of
order.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, text, update

from app.config import Settings
from app.core.db import Database
from app.core.outbox import envelope
from app.core.sql import insert
from app.core.streams import append_once
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from app.schemas.events import matches_filter

log = structlog.get_logger("app.relay")

# `previous_lease` is the lease the row had before this claim: set (and expired) with no
# `last_error` means the relay that held it vanished mid-batch: a takeover.
CLAIM = text("""
    UPDATE outbox_events o
       SET claimed_until = now() + make_interval(secs => :lease), attempts = o.attempts + 1
      FROM (SELECT id, claimed_until FROM outbox_events
             WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
             ORDER BY created_at
             LIMIT :limit
               FOR UPDATE SKIP LOCKED) c
     WHERE o.id = c.id
 RETURNING o.id, o.type, o.occurred_at, o.data, o.refresh_priority, o.recipients,
           o.created_at, o.attempts, c.claimed_until AS previous_lease, o.last_error
""")


def marker_key(settings: Settings, event_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"{settings.redis_prefix}outbox:published:{event_id}:{user_id}"


@dataclass
class PassResult:
    claimed: int = 0
    published: int = 0
    failed: int = 0


async def claim(database: Database, *, settings: Settings, limit: int) -> list[OutboxEvent]:
    # One statement in autocommit: one round trip instead of BEGIN / UPDATE / COMMIT, which
    # is most of an idle relay's poll and of the commit -> XADD lag.
    async with database.engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        rows = (await connection.execute(
            CLAIM, {"lease": settings.relay_lease_seconds, "limit": limit}
        )).mappings().all()
    taken_over = [row for row in rows
                  if row["previous_lease"] is not None and row["last_error"] is None]
    if taken_over:
        log.warning("outbox_lease_takeover", events=len(taken_over),
                    expired_at=min(row["previous_lease"] for row in taken_over).isoformat())
    # UPDATE ... RETURNING comes back in physical order, not the subquery's ORDER BY (rows
    # updated since insertion move): sort, so one batch keeps each user's stream in order.
    # occurred_at orders the events of one transaction (they share created_at).
    events = (OutboxEvent(**{key: value for key, value in row.items() if key in _COLUMNS})
              for row in rows)
    return sorted(events, key=lambda event: (event.created_at, event.occurred_at))


_COLUMNS = frozenset({"id", "type", "occurred_at", "data", "refresh_priority", "recipients",
                      "created_at", "attempts"})


async def publish(
    redis: Redis, rows: Sequence[OutboxEvent], *, settings: Settings
) -> tuple[list[uuid.UUID], dict[uuid.UUID, str]]:
    """XADD each row to each recipient's stream (at most once). Returns the ids fully
    published and an error message per row that was not."""
    calls: list[uuid.UUID] = []
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            payload = json.dumps(envelope(row), separators=(",", ":"))
            for user_id in row.recipients:
                append_once(pipe, settings, marker=marker_key(settings, row.id, user_id),
                            user_id=user_id, type=row.type, data=payload)
                calls.append(row.id)
        replies = await pipe.execute(raise_on_error=False) if calls else []
    errors: dict[uuid.UUID, str] = {}
    for event_id, reply in zip(calls, replies, strict=True):
        if isinstance(reply, Exception):
            errors.setdefault(event_id, f"{type(reply).__name__}: {reply}")
    return [row.id for row in rows if row.id not in errors], errors


DELIVERY_ROWS_PER_INSERT = 5_000


async def settle(
    database: Database, rows: Sequence[OutboxEvent], *, published: Sequence[uuid.UUID],
    errors: dict[uuid.UUID, str], settings: Settings,
) -> None:
    """Mark published rows and enqueue their webhooks; back off the failed ones."""
    by_id = {row.id: row for row in rows}
    async with database.transaction(None) as session:
        if published:
            endpoints = (await session.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.event_types)
                .where(WebhookEndpoint.active)
            )).all()
            deliveries = [
                {"id": uuid.uuid4(), "endpoint_id": endpoint.id, "event_id": event_id,
                 "event_type": by_id[event_id].type, "payload": envelope(by_id[event_id])}
                for event_id in published
                for endpoint in endpoints
                if matches_filter(by_id[event_id].type, endpoint.event_types)
            ]
            # In chunks: one multi-row VALUES binds 5 parameters a row, and the protocol
            # allows 32,767 per statement (a batch of 200 events to 33 endpoints is over).
            for start in range(0, len(deliveries), DELIVERY_ROWS_PER_INSERT):
                await session.execute(
                    insert(WebhookDelivery)
                    .values(deliveries[start:start + DELIVERY_ROWS_PER_INSERT])
                    .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
                )
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(published), OutboxEvent.published_at.is_(None))
                .values(published_at=func.now(), claimed_until=None, last_error=None)
            )
        for event_id, error in errors.items():
            backoff = min(settings.relay_retry_max_seconds,
                          0.25 * 2 ** min(by_id[event_id].attempts, 10))
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id, OutboxEvent.published_at.is_(None))
                .values(claimed_until=func.now() + timedelta(seconds=backoff),
                        last_error=error[:1000])
            )


async def relay_pass(
    database: Database, redis: Redis, *, settings: Settings, limit: int | None = None
) -> PassResult:
    """Claim, publish and settle one batch. Redis being down fails the batch's publish (the
    rows are retried after a short backoff); nothing is lost."""
    rows = await claim(database, settings=settings, limit=limit or settings.relay_batch_size)
    if not rows:
        return PassResult()
    try:
        # Bounded, so a hung connection cannot outlive the lease (a retry after a timeout
        # is safe: the markers keep it from adding anything twice).
        async with asyncio.timeout(settings.relay_lease_seconds / 2):
            published, errors = await publish(redis, rows, settings=settings)
    except (RedisError, OSError, TimeoutError) as exc:
        published, errors = [], {row.id: f"{type(exc).__name__}: {exc}" for row in rows}
    await settle(database, rows, published=published, errors=errors, settings=settings)
    if errors:
        log.warning("outbox_publish_failed", failed=len(errors),
                    error=next(iter(errors.values())))
    return PassResult(claimed=len(rows), published=len(published), failed=len(errors))


async def run_relay(
    database: Database, redis: Redis, *, settings: Settings, seconds: float | None = None,
    until_idle: bool = False,
) -> int:
    """Relay until `seconds` have passed (forever if None), or with `until_idle` until a pass
    finds nothing to claim: a full batch is followed at once by the next, an empty or
    failing one by a short sleep. Returns the events published. Logs its start and stop."""
    deadline = None if seconds is None else time.monotonic() + seconds
    total = 0
    log.info("outbox_relay_started", until_idle=until_idle, seconds=seconds)
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                result = await relay_pass(database, redis, settings=settings)
            except Exception:  # the database blipped: keep the loop alive, retry shortly
                log.exception("outbox_relay_pass_failed")
                result = PassResult(failed=1)
            total += result.published
            if until_idle and not result.claimed:
                break
            if result.claimed < settings.relay_batch_size or result.failed:
                await asyncio.sleep(settings.relay_poll_seconds if not result.failed
                                    else min(1.0, settings.relay_retry_max_seconds))
    finally:
        log.info("outbox_relay_stopped", published=total)
    return total


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.services.events.relay",
        description="Run an outbox relay as a process of its own (beside or instead of the "
                    "workers' relays: any number may run at once). Reads the same settings "
                    "as the service (DATABASE_URL, REDIS_URL, REDIS_PREFIX, RELAY_*). "
                    "Stops on SIGINT or SIGTERM.")
    parser.add_argument("seconds", nargs="?", type=float, default=None,
                        help="stop after this many seconds (default: run until stopped)")
    parser.add_argument("--until-idle", action="store_true",
                        help="stop as soon as nothing is left to publish")
    return parser.parse_args(argv)


async def main(seconds: float | None = None, *, until_idle: bool = False) -> None:
    """A relay process of its own: `python -m app.services.events.relay [seconds]`."""
    from app.config import get_settings
    from app.core.logging import configure_logging
    from app.core.redis import make_redis

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.environment != "development")
    database = Database.connect(settings.worker_db_url, settings, pool_size=2, max_overflow=2)
    redis = make_redis(settings)
    relay = asyncio.ensure_future(run_relay(database, redis, settings=settings,
                                            seconds=seconds, until_idle=until_idle))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, relay.cancel)
    try:
        await relay
    except asyncio.CancelledError:
        pass  # stopped by a signal: the relay logged its stop
    finally:
        await redis.aclose()
        await database.dispose()


if __name__ == "__main__":
    options = _arguments(None)
    asyncio.run(main(options.seconds, until_idle=options.until_idle))
