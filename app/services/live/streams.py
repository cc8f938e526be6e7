"""The live mentor dashboard: a `snapshot`, then the mentor's Redis stream relayed as SSE.

Everything a stream needs lives in Redis (the per-user stream the outbox relay writes) or in
the client's `Last-Event-ID`, so any replica can serve any (re)connection. An open stream
holds no connection of its own: this process's readers (app/services/live/hub.py) block
on XREAD for all its streams, and the snapshot is read in its own short transaction before
the stream starts.
"""

from __future__ import annotations

import json
import re
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
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import ServerSentEvent

from app.core.auth import Principal
from app.core.db import Database
from app.core.errors import ServiceUnavailable
from app.core.redis import user_stream_key
from app.services.dashboard.mentor import build_dashboard
from app.services.live.hub import StreamHub, StreamId, Subscription, format_stream_id

log = structlog.get_logger("app.realtime")

OPEN_STREAMS = Gauge(
    "mentorship_sse_open_streams",
    "Open SSE dashboard streams.",
    multiprocess_mode="livesum",
)

ZERO_ID: StreamId = (0, 0)
_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_MAX_PART = 2**64 - 1


def parse_stream_id(value: str | None) -> StreamId | None:
    """A Redis stream id `ms-seq`, or None when absent or malformed."""
    match = _STREAM_ID.match(value.strip()) if value else None
    if not match:
        return None
    ms, seq = int(match[1]), int(match[2])
    return (ms, seq) if ms <= _MAX_PART and seq <= _MAX_PART else None


@dataclass(frozen=True, slots=True)
class StreamState:
    """What `XINFO STREAM` says about a user's stream (the parts resuming depends on)."""

    exists: bool
    last_generated: StreamId = ZERO_ID
    length: int = 0
    first_entry: StreamId | None = None
    entries_added: int | None = None  # Redis >= 7: every XADD ever, trimmed or not
    max_deleted: StreamId | None = None  # Redis >= 7: highest id removed by XDEL


async def read_stream_state(redis: Redis, key: str) -> StreamState:
    try:
        info = await redis.xinfo_stream(key)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return StreamState(exists=False)
        raise
    first = info.get("first-entry")
    added = info.get("entries-added")
    return StreamState(
        exists=True,
        last_generated=parse_stream_id(info["last-generated-id"]) or ZERO_ID,
        length=int(info["length"]),
        first_entry=parse_stream_id(first[0]) if first else None,
        entries_added=int(added) if added is not None else None,
        max_deleted=parse_stream_id(info.get("max-deleted-entry-id")),
    )


def resume_point(state: StreamState, last_seen: StreamId | None) -> StreamId | None:
    """Where a client that last saw `last_seen` resumes, or None if it needs a fresh snapshot
    because no event after `last_seen` may be missing from the stream any more.

    Trimming removes entries from the head without saying which, so resuming is safe only
    when provably nothing after `last_seen` was removed: the client saw the newest id, or
    nothing was ever removed, or its id is still at or past the first entry kept."""
    if last_seen is None:
        return None
    if not state.exists:  # never written, or Redis lost it: only "nothing seen" is safe
        return last_seen if last_seen == ZERO_ID else None
    if last_seen > state.last_generated:
        return None  # not an id of this stream (e.g. Redis was replaced)
    if state.max_deleted is not None and last_seen < state.max_deleted:
        return None  # an entry after it was XDEL'd
    if last_seen == state.last_generated:
        return last_seen
    if state.entries_added is not None and state.entries_added == state.length:
        return last_seen  # nothing ever trimmed
    if state.first_entry is not None and last_seen >= state.first_entry:
        return last_seen
    return None


async def snapshot_body(session: AsyncSession, *, mentor_id: uuid.UUID,
                        now: datetime) -> dict[str, Any]:
    """The dashboard body the stream opens with (same as GET /api/v1/mentor/dashboard)."""
    body = await build_dashboard(session, mentor_id=mentor_id, now=now)
    return to_jsonable_python(body)


@dataclass(slots=True)
class StreamStart:
    key: str
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
        state = await read_stream_state(redis, key)
    except RedisError as exc:
        raise ServiceUnavailable("Real-time updates are unavailable; retry shortly.",
                                 code="stream_unavailable",
                                 headers={"Retry-After": "5"}) from exc
    resume = resume_point(state, parse_stream_id(last_event_id))
    if resume is not None:
        return StreamStart(key, format_stream_id(resume), None)
    # The stream position is read BEFORE the snapshot: an event relayed in between is then
    # both in the snapshot and relayed (harmless), never in neither.
    cursor = format_stream_id(state.last_generated)
    async with hub.snapshot_slots, db.transaction(principal) as session:
        if snapshot is None:  # the mentor's dashboard
            body = await snapshot_body(session, mentor_id=principal.user_id, now=now)
        else:
            body = to_jsonable_python(await snapshot(session))
    return StreamStart(key, cursor, body)


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
                 recheck_seconds: float = 60.0) -> None:
        self.hub, self.start, self.expires_at = hub, start, expires_at
        # The token is checked against the database again every `recheck_seconds` (the
        # identity cache's TTL), so a demoted or deactivated user's open stream ends too.
        self.still_honoured = still_honoured
        self.recheck_seconds = max(recheck_seconds, 0.1)
        self._subscription: Subscription | None = None
        self._stopped = False

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
                yield ServerSentEvent(data, event="snapshot", id=cursor, retry=retry)
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
                    yield ServerSentEvent(fields["data"], event=fields["type"], id=entry_id,
                                          retry=retry)
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
                        event="token_expired", id=cursor, retry=retry)
                    return
                wait = expires_in
                if self.still_honoured is not None:
                    check_in = self.recheck_seconds - (time.monotonic() - last_check)
                    if check_in <= 0:
                        if not await self.still_honoured():
                            yield ServerSentEvent(
                                json.dumps({"reason": "invalid_token"}),
                                event="token_revoked", id=cursor, retry=retry)
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
            hub.unsubscribe(subscription)
            hub.open_streams -= 1
            OPEN_STREAMS.dec()


def _seconds_left(expires_at: datetime | None) -> float:
    if expires_at is None:
        return float("inf")
    return (expires_at - datetime.now(UTC)).total_seconds()
