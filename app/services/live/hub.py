"""One process's reading of the users' Redis streams for its open SSE streams.

A blocking XREAD per open stream would cost a Redis connection and a socket per stream
(about 7 KiB of memory each in this process, and 5,000 Redis clients for 5,000 streams).
Instead a few readers per process each hold one connection and one blocking XREAD over up
to `sse_keys_per_reader` stream keys, and hand each entry to the subscriptions of its key.

Nothing here is needed by another replica: a subscription starts from the cursor the
client brought (its Last-Event-ID or the position of its snapshot), and every entry after
that cursor is still read from Redis.

How a subscription gets every entry after its cursor, once and in order:
- a key nobody in this process watches yet is watched from the subscription's cursor;
- a key already watched is watched from where its reader is (`watch.cursor`, the last entry
  handed out): entries after it reach the new subscription through the reader, and the ones
  between the subscription's cursor and `watch.cursor` are read once with XRANGE
  (`catch_up`). Joining and reading `watch.cursor` happen in one step of the event loop, so
  no entry falls between the two;
- a subscription skips entries at or before the last one it delivered (its cursor may be
  ahead of `watch.cursor`: the reader has not reached its snapshot's position yet).

A reader blocked in XREAD does not see a key added meanwhile; it is woken with CLIENT
UNBLOCK (from the shared client) so the new key is read at once. Were that refused, the key
is read when the block times out (`sse_block_seconds`), late but complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse

from app.config import Settings
from app.core.redis import make_redis
from app.core.streams import StreamId, format_entry_id

log = structlog.get_logger("app.realtime")

Entry = tuple[str, dict[str, str]]  # (entry id, fields)


def entry_id(value: str) -> StreamId:
    """The order of an entry id the server returned (`ms-seq`)."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)


class Subscription:
    """One open stream's view of its key: entries not yet delivered, and why it ended."""

    __slots__ = ("key", "last", "pending", "closed", "_waiter", "_max_pending")

    def __init__(self, key: str, cursor: str, max_pending: int) -> None:
        self.key = key
        self.last = entry_id(cursor)  # the last entry delivered (or skipped as already seen)
        self.pending: list[Entry] = []  # a list: an empty deque costs 0.6 KiB per stream
        self.closed: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._max_pending = max_pending

    def push(self, entries: list[Entry]) -> None:
        if self.closed:
            return
        self.pending.extend(entries)
        if len(self.pending) > self._max_pending:
            # A client this far behind resumes from Redis after reconnecting instead of
            # holding an ever longer queue here.
            self.close("lagging")
        self._wake()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self.pending.clear()
        self._wake()

    def take(self) -> list[Entry]:
        """The pending entries after the last one delivered, in order."""
        fresh = []
        pending, self.pending = self.pending, []
        for entry in pending:
            position = entry_id(entry[0])
            if position > self.last:
                self.last = position
                fresh.append(entry)
        return fresh

    async def wait(self, seconds: float) -> None:
        """Until an entry is pending or the subscription is closed, at most `seconds`."""
        if self.pending or self.closed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds if math.isfinite(seconds) else None):
                    await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Watch:
    __slots__ = ("cursor", "subscriptions")

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor  # entries after it are read next
        self.subscriptions: set[Subscription] = set()


class _Reader:
    """One Redis connection blocking on XREAD over a set of keys."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        self.watches: dict[str, _Watch] = {}
        self.client_id: int | None = None
        self.reading = 0  # which XREAD is in flight (0: none)
        self._waking = 0  # the XREAD a waker is unblocking
        self._wakers: set[asyncio.Task[None]] = set()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        settings = self.hub.settings
        client = make_redis(settings, single_connection_client=True,
                            client_name=settings.sse_redis_client_name,
                            socket_connect_timeout=5, socket_keepalive=True,
                            socket_timeout=settings.sse_block_seconds + 10)
        generation = 0
        try:
            self.client_id = await client.client_id()
            while self.watches:
                streams = {key: watch.cursor for key, watch in self.watches.items()}
                generation += 1
                self.reading = generation
                reply = await client.xread(streams, count=settings.sse_batch,
                                           block=max(1, int(settings.sse_block_seconds * 1000)))
                self.reading = 0
                for key, entries in reply or ():
                    self._dispatch(key, entries)
        except (RedisError, OSError) as exc:
            log.warning("sse_reader_failed", error=type(exc).__name__, keys=len(self.watches))
            for watch in self.watches.values():
                for subscription in watch.subscriptions:
                    subscription.close("redis_error")
        finally:
            self.hub._forget(self)
            for waker in list(self._wakers):
                waker.cancel()
            # Shielded: also runs when the task is cancelled (last subscription left).
            with contextlib.suppress(Exception):
                await asyncio.shield(client.aclose())

    def _dispatch(self, key: str, entries: list[Entry]) -> None:
        watch = self.watches.get(key)
        if watch is None or not entries:  # everyone left meanwhile
            return
        watch.cursor = entries[-1][0]
        for subscription in watch.subscriptions:
            subscription.push(entries)

    def wake(self) -> None:
        """Make the XREAD in flight return, so that the next one reads the keys added.
        A key added while no XREAD is in flight is in the next one anyway."""
        if self.reading and self.reading != self._waking and self.client_id is not None:
            self._waking = self.reading
            waker = asyncio.get_running_loop().create_task(self._unblock(self.reading))
            self._wakers.add(waker)
            waker.add_done_callback(self._wakers.discard)

    async def _unblock(self, generation: int) -> None:
        try:
            # CLIENT UNBLOCK answers 0 while the XREAD is still on its way to Redis: retry
            # until it is unblocked or has returned by itself.
            for _ in range(200):
                if self.reading != generation:
                    return
                if await self.hub.redis.client_unblock(self.client_id):
                    return
                await asyncio.sleep(0.005)
        except RedisError as exc:  # the block timeout will pick the key up
            log.warning("sse_unblock_failed", error=type(exc).__name__)


class StreamHub:
    """This process's streaming resources. Nothing here is needed by another replica."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis  # the shared client: CLIENT UNBLOCK and catch-up reads
        self.snapshot_slots = asyncio.Semaphore(settings.sse_snapshot_concurrency)
        self.open_streams = 0
        self.streams_by_user: dict[str, int] = {}  # admitted streams (app/services/live/streams.py)
        self._readers: list[_Reader] = []
        self._reader_of: dict[str, _Reader] = {}
        self._closing = False
        self._shutdown_watch: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        return self.open_streams >= self.settings.sse_max_streams

    @property
    def readers(self) -> int:
        return len(self._readers)

    def subscribe(self, key: str, cursor: str) -> tuple[Subscription, str | None]:
        """A subscription to `key`'s entries after `cursor`, and, when entries up to a
        later position reach it only through `catch_up`, that position."""
        subscription = Subscription(key, cursor, self.settings.sse_max_pending)
        if self._closing:
            subscription.close("shutdown")
        elif self._shutdown_watch is None:
            self._shutdown_watch = asyncio.get_running_loop().create_task(self._end_on_exit())
        reader = self._reader_of.get(key)
        if reader is None:
            reader = self._reader_with_room()
            reader.watches[key] = watch = _Watch(cursor)
            self._reader_of[key] = reader
            reader.wake()
        else:
            watch = reader.watches[key]
        watch.subscriptions.add(subscription)
        behind = entry_id(watch.cursor) > subscription.last
        return subscription, watch.cursor if behind else None

    async def catch_up(self, subscription: Subscription, until: str) -> list[Entry]:
        """The entries after the subscription's cursor up to `until`, read once."""
        after = format_entry_id(subscription.last)
        entries = await self.redis.xrange(subscription.key, min=f"({after}", max=until)
        subscription.pending[:0] = entries  # before anything pushed since
        return subscription.take()

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close("done")
        reader = self._reader_of.get(subscription.key)
        if reader is None:
            return
        watch = reader.watches[subscription.key]
        watch.subscriptions.discard(subscription)
        if watch.subscriptions:
            return
        del reader.watches[subscription.key], self._reader_of[subscription.key]
        if not reader.watches:  # no idle connection is kept
            reader.task.cancel()
            self._forget(reader)

    async def _end_on_exit(self) -> None:
        # sse-starlette's detection of the server's exit (SIGTERM to uvicorn), which its
        # EventSourceResponse would await in a task per stream: here once per process.
        await EventSourceResponse._listen_for_exit_signal()
        self.close()

    def close(self) -> None:
        """On shutdown: end every stream of this process."""
        self._closing = True
        if self._shutdown_watch is not None:
            self._shutdown_watch.cancel()
        for reader in list(self._readers):
            for watch in reader.watches.values():
                for subscription in watch.subscriptions:
                    subscription.close("shutdown")
            reader.task.cancel()

    def _reader_with_room(self) -> _Reader:
        for reader in self._readers:
            if len(reader.watches) < self.settings.sse_keys_per_reader:
                return reader
        reader = _Reader(self)
        self._readers.append(reader)
        return reader

    def _forget(self, reader: _Reader) -> None:
        if reader in self._readers:
            self._readers.remove(reader)
            for key in reader.watches:
                if self._reader_of.get(key) is reader:
                    del self._reader_of[key]
