"""Open streams per user and process (finding F11: one token opened 300 streams)."""

from __future__ import annotations

import httpx
import pytest

from tests.live.test_sse import PATH, READ_TIMEOUT, eventually, open_streams_gauge, stream
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def capped(settings):
    server = LiveServer.start({"SSE_MAX_STREAMS_PER_USER": "2"})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_a_user_past_the_cap_gets_429_too_many_streams(capped, factory):
    mentor, other = await factory.mentor(), await factory.mentor()
    token = factory.token(mentor)
    async with stream(capped, token) as one, stream(capped, token) as two:
        await one.next(), await two.next()  # snapshots
        async with httpx.AsyncClient(base_url=capped.url, timeout=READ_TIMEOUT) as http:
            refused = await http.get(PATH, headers={"Authorization": f"Bearer {token}"})
            # The query-token form counts the same user.
            refused_query = await http.get(PATH, params={"access_token": token})
        for response in (refused, refused_query):
            assert response.status_code == 429, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "too_many_streams"
            assert int(response.headers["retry-after"]) > 0
        async with stream(capped, factory.token(other)) as theirs:  # others are not affected
            assert (await theirs.next()).event == "snapshot"

    async def all_closed() -> bool:
        return await open_streams_gauge(capped) == 0

    await eventually(all_closed)
    async with stream(capped, token) as again:  # slots are given back when streams end
        assert (await again.next()).event == "snapshot"


async def test_streams_that_ended_give_their_slots_back(capped, factory):
    """Clients that leave (however often) do not use up their user's slots."""
    mentor = await factory.mentor()
    token = factory.token(mentor)

    async def all_closed() -> bool:
        return await open_streams_gauge(capped) == 0

    for _ in range(4):
        async with stream(capped, token) as events:
            assert (await events.next()).event == "snapshot"
        # The server gives the slot back once it has handled the client's disconnect, which
        # races the next connection: without the wait, two unhandled ones refuse the third.
        await eventually(all_closed)
    async with stream(capped, token) as one, stream(capped, token) as two:
        assert (await one.next()).event == (await two.next()).event == "snapshot"
