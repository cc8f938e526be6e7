"""The live mentor dashboard: a `snapshot`, then the mentor's Redis stream relayed as SSE.

Everything a stream needs lives in Redis (the per-user stream the outbox relay writes, and
its epoch) or in the client's `Last-Event-ID`, so any replica can serve any (re)connection.
SSE ids are `<epoch>-<entry id>`; when a resume is safe is written in app/core/streams.py.
An open stream holds no connection of its own: this process's readers
(app/services/live/hub.py) block on XREAD for all its streams, and the snapshot is read in
its own short transaction before the stream starts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Gauge
from pydantic_core import to_jsonable_python
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import ServerSentEvent

from app.core.auth import Principal
from app.core.db import Database
from app.core.errors import ServiceUnavailable, TooManyRequests
from app.core.redis import user_stream_key
from app.core.streams import (
    format_entry_id,
    open_stream,
    parse_sse_id,
    resume_point,
    sse_id,
)
from app.services.dashboard.mentor import build_dashboard
from app.services.live.hub import StreamHub, Subscription

log = structlog.get_logger("app.realtime")

OPEN_STREAMS = Gauge(
    "mentorship_sse_open_streams",
    "Open SSE dashboard streams.",
    multiprocess_mode="livesum",
)


class StreamSlot:
    """A stream admitted for a user in this process; `release` (idempotent) frees it."""

    __slots__ = ("hub", "user", "_held")

    def __init__(self, hub: StreamHub, user: str) -> None:
        self.hub, self.user, self._held = hub, user, True
        hub.streams_by_user[user] = hub.streams_by_user.get(user, 0) + 1

    def release(self) -> None:
        if self._held:
            self._held = False
            left = self.hub.streams_by_user[self.user] - 1
            if left:
                self.hub.streams_by_user[self.user] = left
            else:
                del self.hub.streams_by_user[self.user]


def admit_stream(hub: StreamHub, principal: Principal) -> StreamSlot:
    """A slot for one more stream of `principal` in this process, or the problem: 503
    `too_many_streams` when the process is full, 429 `too_many_streams` when the user
    already has `SSE_MAX_STREAMS_PER_USER` here. Counted from admission (not from the first
    byte), so concurrent connects of one user cannot overshoot."""
    if hub.full:
        raise ServiceUnavailable("This replica has too many open streams; retry shortly.",
                                 code="too_many_streams", headers={"Retry-After": "5"})
    user = str(principal.user_id)
    if hub.streams_by_user.get(user, 0) >= hub.settings.sse_max_streams_per_user:
        raise TooManyRequests(
            f"At most {hub.settings.sse_max_streams_per_user} open streams per user; close "
            "one first.", code="too_many_streams", headers={"Retry-After": "30"})
    return StreamSlot(hub, user)


async def snapshot_body(session: AsyncSession, *, mentor_id: uuid.UUID,
                        now: datetime) -> dict[str, Any]:
    """The dashboard body the stream opens with (same as GET /api/v1/mentor/dashboard)."""
    body = await build_dashboard(session, mentor_id=mentor_id, now=now)
    return to_jsonable_python(body)


@dataclass(slots=True)
class StreamStart:
    key: str
    epoch: str  # of the stream when it was opened: the prefix of every SSE id sent
    cursor: str  # the XREAD position: events after it are relayed
    snapshot: dict[str, Any] | None  # sent first when the client cannot resume


Snapshot = Callable[[AsyncSession], Awaitable[Any]]


async def start_stream(*, hub: StreamHub, redis: Redis, db: Database, principal: Principal,
                       last_event_id: str | None, now: datetime,
                       snapshot: Snapshot | None = None) -> StreamStart:
    """Resume after `last_event_id` when every later event is still in the stream, else
    read a snapshot. Runs before the response starts, so failures are problem responses."""
    key = user_stream_key(hub.settings, principal.user_id)
    try:
        state = await open_stream(redis, hub.settings, principal.user_id)
    except RedisError as exc:
        raise ServiceUnavailable("Real-time updates are unavailable; retry shortly.",
                                 code="stream_unavailable",
                                 headers={"Retry-After": "5"}) from exc
    resume = resume_point(state, parse_sse_id(last_event_id))
    if resume is not None:
        return StreamStart(key, state.epoch, format_entry_id(resume), None)
    # The stream position is read BEFORE the snapshot: an event relayed in between is then
    # both in the snapshot and relayed (harmless), never in neither.
    cursor = format_entry_id(state.last_generated)
    async with hub.snapshot_slots, db.transaction(principal) as session:
        if snapshot is None:  # the mentor's dashboard
            body = await snapshot_body(session, mentor_id=principal.user_id, now=now)
        else:
            body = to_jsonable_python(await snapshot(session))
    return StreamStart(key, state.epoch, cursor, body)


class LiveStream:
    """The SSE events of one stream: the snapshot if any, then each entry of the user's
    stream after `start.cursor` (`event:` type, `id:` entry id, `data:` the JSON envelope),
    until the client leaves (`stop`), the token expires, Redis fails or the server shuts
    down (the client then reconnects after `retry` and resumes with Last-Event-ID).

    The keep-alive comment is sent from here, not by a ping task of the response: waiting
    for entries times out at the ping interval, so an idle stream costs no task of its own.
    """

    def __init__(self, hub: StreamHub, start: StreamStart, *,
                 expires_at: datetime | None,
                 still_honoured: Callable[[], Awaitable[bool]] | None = None,
                 recheck_seconds: float = 60.0, slot: StreamSlot | None = None) -> None:
        self.hub, self.start, self.expires_at, self.slot = hub, start, expires_at, slot
        # The token is checked against the database again every `recheck_seconds` (the
        # identity cache's TTL), so a demoted or deactivated user's open stream ends too.
        self.still_honoured = still_honoured
        self.recheck_seconds = max(recheck_seconds, 0.1)
        self._subscription: Subscription | None = None
        self._stopped = False

    def release(self) -> None:
        """Free the user's stream slot (when the stream ends, or never started)."""
        if self.slot is not None:
            self.slot.release()

    def stop(self) -> None:
        """The client has gone: end the stream (from the response's disconnect listener)."""
        self._stopped = True
        if self._subscription is not None:
            self._subscription.close("disconnected")

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        hub, start, settings = self.hub, self.start, self.hub.settings
        retry: int | None = settings.sse_retry_ms  # sent once, on the first event
        cursor = start.cursor
        snapshot, start.snapshot = start.snapshot, None  # not kept for the stream's life
        ping_every = settings.sse_ping_seconds if settings.sse_ping_seconds > 0 else None
        subscription, behind_until = hub.subscribe(start.key, cursor)
        self._subscription = subscription
        if self._stopped:
            subscription.close("disconnected")
        hub.open_streams += 1
        OPEN_STREAMS.inc()
        try:
            if snapshot is not None:
                data, snapshot = json.dumps(snapshot, separators=(",", ":")), None
                yield ServerSentEvent(data, event="snapshot", id=sse_id(start.epoch, cursor),
                                      retry=retry)
                retry = data = None
            last_sent = last_check = time.monotonic()
            entries = (await hub.catch_up(subscription, behind_until)
                       if behind_until is not None else [])
            while True:
                for entry_id, fields in entries:
                    cursor = entry_id
                    if "type" not in fields or "data" not in fields:
                        log.warning("sse_malformed_entry", key=start.key, entry_id=entry_id)
                        continue
                    yield ServerSentEvent(fields["data"], event=fields["type"],
                                          id=sse_id(start.epoch, entry_id), retry=retry)
                    retry = None
                    last_sent = time.monotonic()
                if subscription.closed:
                    if subscription.closed not in ("disconnected", "shutdown"):
                        log.warning("sse_stream_ended", reason=subscription.closed,
                                    key=start.key)
                    return
                expires_in = _seconds_left(self.expires_at)
                if expires_in <= 0:
                    expired = self.expires_at.isoformat() if self.expires_at else None
                    yield ServerSentEvent(
                        json.dumps({"reason": "token_expired", "expired_at": expired}),
                        event="token_expired", id=sse_id(start.epoch, cursor), retry=retry)
                    return
                wait = expires_in
                if self.still_honoured is not None:
                    check_in = self.recheck_seconds - (time.monotonic() - last_check)
                    if check_in <= 0:
                        if not await self.still_honoured():
                            yield ServerSentEvent(
                                json.dumps({"reason": "invalid_token"}),
                                event="token_revoked", id=sse_id(start.epoch, cursor),
                                retry=retry)
                            return
                        last_check = time.monotonic()
                        check_in = self.recheck_seconds
                    wait = min(wait, check_in)
                if ping_every is not None:
                    ping_in = ping_every - (time.monotonic() - last_sent)
                    if ping_in <= 0:
                        yield ServerSentEvent(comment="ping")
                        last_sent = time.monotonic()
                        ping_in = ping_every
                    wait = min(wait, ping_in)
                await subscription.wait(wait)
                entries = subscription.take()
        except (RedisError, OSError) as exc:  # the catch-up read
            log.warning("sse_redis_error", error=type(exc).__name__, key=start.key)
        finally:
            self.release()
            hub.unsubscribe(subscription)
            hub.open_streams -= 1
            OPEN_STREAMS.dec()


def _seconds_left(expires_at: datetime | None) -> float:
    if expires_at is None:
        return float("inf")
    return (expires_at - datetime.now(UTC)).total_seconds()
