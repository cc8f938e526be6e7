"""The per-process fan-out of users' Redis streams to open SSE streams, on a real Redis.

The hub is not HTTP, so these run in the test's event loop; the SSE route over a real
uvicorn is in test_sse.py."""

from __future__ import annotations

import asyncio
import math
import random
import uuid

import pytest

from app.config import Settings
from app.services.live.hub import Entry, StreamHub, Subscription
from tests.support.worker_helpers import wait_until


@pytest.fixture
def hub_settings(settings: Settings) -> Settings:
    """A long XREAD block (so only CLIENT UNBLOCK can make a reader see a new key quickly),
    two keys per reader (so several readers share the work), a unique connection name."""
    return settings.model_copy(update={
        "sse_block_seconds": 30.0, "sse_keys_per_reader": 2, "sse_max_pending": 500,
        "sse_redis_client_name": f"hub-test-{uuid.uuid4().hex[:8]}",
    })


@pytest.fixture
async def hub(hub_settings, redis):
    hub = StreamHub(hub_settings, redis)
    yield hub
    hub.close()


def new_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}hubtest:{uuid.uuid4().hex}"


async def reader_connections(redis, settings: Settings) -> list[dict]:
    return [c for c in await redis.client_list()
            if c.get("name") == settings.sse_redis_client_name]


async def receive(hub: StreamHub, subscription: Subscription, behind_until: str | None,
                  count: int, within: float = 10.0) -> list[str]:
    """The ids one stream would send, until `count` of them (as the SSE relay reads)."""
    ids = [e[0] for e in await hub.catch_up(subscription, behind_until)] if behind_until else []
    async with asyncio.timeout(within):
        while len(ids) < count:
            assert subscription.closed is None, subscription.closed
            await subscription.wait(1.0)
            ids += [entry_id for entry_id, _ in subscription.take()]
    return ids


async def test_every_subscriber_gets_exactly_the_entries_after_its_cursor(
        hub, hub_settings, redis):
    """Subscribers join at random moments with random cursors (from the start, from an
    entry already read by others, from the newest) while entries are being written: each
    gets every entry after its cursor, in order, none twice."""
    keys = [new_key(hub_settings) for _ in range(3)]
    written: dict[str, list[str]] = {key: [] for key in keys}
    total_per_key = 120
    rng = random.Random(7)
    joined: list[tuple[str, Subscription, str | None, str]] = []

    async def write() -> None:
        for n in range(total_per_key):
            for key in keys:
                written[key].append(await redis.xadd(key, {"type": "t", "data": str(n)}))
            if n % 10 == 0:
                await asyncio.sleep(0.01)

    async def join() -> None:
        for _ in range(24):
            await asyncio.sleep(rng.uniform(0, 0.05))
            key = rng.choice(keys)
            seen = written[key]
            cursor = rng.choice(["0-0", *(seen[-1:] or []), *(rng.sample(seen, 1) if seen
                                                             else [])])
            subscription, behind = hub.subscribe(key, cursor)
            joined.append((key, subscription, behind, cursor))

    await asyncio.gather(write(), join())
    assert hub.readers == 2  # 3 keys, 2 per reader

    for key, subscription, behind, cursor in joined:
        after = written[key][written[key].index(cursor) + 1:] if cursor != "0-0" \
            else written[key]
        got = await receive(hub, subscription, behind, len(after))
        assert got == after, (cursor, behind)
        hub.unsubscribe(subscription)


async def test_a_key_added_to_a_blocked_reader_is_read_at_once(hub, hub_settings, redis):
    first, second = new_key(hub_settings), new_key(hub_settings)
    a, _ = hub.subscribe(first, "0-0")

    async def blocked_in_xread() -> bool:
        return any(c.get("cmd") == "xread" and "b" in c.get("flags", "")
                   for c in await reader_connections(redis, hub_settings))

    await wait_until(blocked_in_xread)
    b, _ = hub.subscribe(second, "0-0")  # same reader (two keys each), blocked for 30 s
    assert hub.readers == 1
    entry = await redis.xadd(second, {"type": "t", "data": "{}"})
    started = asyncio.get_running_loop().time()
    assert await receive(hub, b, None, 1, within=25) == [entry]
    # Not the 30 s block (it takes milliseconds; half the block leaves a starved machine room).
    assert asyncio.get_running_loop().time() - started < 15.0
    for subscription in (a, b):
        hub.unsubscribe(subscription)


async def test_the_last_subscriber_leaving_closes_the_readers_connection(
        hub, hub_settings, redis):
    key = new_key(hub_settings)
    tabs = [hub.subscribe(key, "0-0")[0] for _ in range(3)]

    def connections(n: int):
        async def check() -> bool:
            return len(await reader_connections(redis, hub_settings)) == n
        return check

    await wait_until(connections(1))
    for tab in tabs[:2]:
        hub.unsubscribe(tab)
    await asyncio.sleep(0.2)
    assert len(await reader_connections(redis, hub_settings)) == 1  # one tab is still open
    hub.unsubscribe(tabs[2])
    await wait_until(connections(0))
    assert hub.readers == 0


async def test_a_subscriber_too_far_behind_is_ended(hub, hub_settings, redis):
    key = new_key(hub_settings)
    slow, _ = hub.subscribe(key, "0-0")
    for n in range(hub_settings.sse_max_pending + 1):
        await redis.xadd(key, {"type": "t", "data": str(n)})

    async def ended() -> bool:
        return slow.closed is not None

    await wait_until(ended)
    assert slow.closed == "lagging" and slow.take() == []  # nothing kept for it
    hub.unsubscribe(slow)


async def test_a_broken_reader_ends_its_streams_and_a_new_one_takes_over(
        hub, hub_settings, redis):
    key = new_key(hub_settings)
    subscription, _ = hub.subscribe(key, "0-0")
    await wait_until(lambda: _has_connections(redis, hub_settings))
    for client in await reader_connections(redis, hub_settings):
        await redis.execute_command("CLIENT", "KILL", "ID", client["id"])

    async def ended() -> bool:
        return subscription.closed is not None

    await wait_until(ended)
    assert subscription.closed == "redis_error"
    assert hub.readers == 0
    hub.unsubscribe(subscription)

    again, _ = hub.subscribe(key, "0-0")
    entry = await redis.xadd(key, {"type": "t", "data": "{}"})
    assert await receive(hub, again, None, 1) == [entry]
    hub.unsubscribe(again)


async def test_shutdown_ends_every_stream(hub, hub_settings, redis):
    subscriptions = [hub.subscribe(new_key(hub_settings), "0-0")[0] for _ in range(3)]
    hub.close()
    assert [s.closed for s in subscriptions] == ["shutdown"] * 3
    late, _ = hub.subscribe(new_key(hub_settings), "0-0")
    assert late.closed == "shutdown"
    for subscription in [*subscriptions, late]:
        hub.unsubscribe(subscription)
    await wait_until(lambda: _has_connections(redis, hub_settings, expected=False))


def test_take_skips_what_was_already_delivered():
    subscription = Subscription("k", "5-1", max_pending=10)
    entries: list[Entry] = [("5-0", {}), ("5-1", {}), ("5-2", {}), ("6-0", {}), ("5-2", {})]
    subscription.push(entries)
    assert [e[0] for e in subscription.take()] == ["5-2", "6-0"]


async def _has_connections(redis, settings: Settings, expected: bool = True) -> bool:
    return bool(await reader_connections(redis, settings)) == expected


async def test_a_wait_without_deadline_ends_with_the_next_entry():
    """No ping and a token without expiry: the stream waits without a timer."""
    subscription = Subscription("k", "0-0", max_pending=10)
    waiting = asyncio.create_task(subscription.wait(math.inf))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    subscription.push([("1-0", {})])
    await asyncio.wait_for(waiting, 1)
    assert [e[0] for e in subscription.take()] == ["1-0"]
