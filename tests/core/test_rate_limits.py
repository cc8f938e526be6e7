"""Rate limits (finding F11, CONTRACT "Errors and limits"): per token subject for people and
services apart, per client IP only behind a trusted proxy, in Redis, failing open."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from app.core import ratelimit
from app.core.ratelimit import SLIDING_WINDOW, WINDOW_SECONDS, RateLimiter
from app.main import create_app
from tests.support.worker_helpers import wait_until

WHOAMI = "/api/v1/whoami"


@asynccontextmanager
async def app_with(settings, **changes) -> AsyncIterator[httpx.AsyncClient]:
    # A generous Redis timeout: on a busy test machine the limiter must not fail open.
    changes = {"rate_limit_redis_timeout_seconds": 5.0, **changes}
    application = create_app(settings.model_copy(update=changes))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


def assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_SECONDS
    return retry_after


async def test_people_get_their_per_minute_budget_then_429(settings, factory):
    mentor, other = await factory.mentor(), await factory.mentor()
    async with app_with(settings, rate_limit_per_minute=5) as http:
        for _ in range(5):
            assert (await http.get(WHOAMI, headers=factory.headers(mentor))).status_code == 200
        assert_rate_limited(await http.get(WHOAMI, headers=factory.headers(mentor)))
        # A fresh token of the same user shares the budget (counted per subject)...
        assert_rate_limited(await http.get(WHOAMI, headers=factory.headers(mentor)))
        # ...another user has their own.
        assert (await http.get(WHOAMI, headers=factory.headers(other))).status_code == 200


async def test_services_have_their_own_larger_budget(settings, factory):
    service, person = await factory.user("service"), await factory.mentor()
    async with app_with(settings, rate_limit_per_minute=2,
                        rate_limit_service_per_minute=6) as http:
        statuses = [(await http.get(WHOAMI, headers=factory.headers(service))).status_code
                    for _ in range(7)]
        assert statuses == [200] * 6 + [429]
        statuses = [(await http.get(WHOAMI, headers=factory.headers(person))).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_the_query_token_counts_too(settings, factory):
    mentor = await factory.mentor()
    async with app_with(settings, rate_limit_per_minute=2) as http:
        token = factory.token(mentor)
        assert (await http.get(WHOAMI, headers=factory.headers(mentor))).status_code == 200
        assert (await http.get(WHOAMI, headers=factory.headers(mentor))).status_code == 200
        assert_rate_limited(await http.get("/api/v1/calendar.ics",
                                           params={"access_token": token}))


async def test_a_forged_token_spends_nobody_s_budget(settings, factory):
    mentor = await factory.mentor()
    forged = factory.token(mentor)[:-6] + "AAAAAA"
    async with app_with(settings, rate_limit_per_minute=3) as http:
        for _ in range(10):
            response = await http.get(WHOAMI, headers={"Authorization": f"Bearer {forged}"})
            assert response.status_code == 401
        assert (await http.get(WHOAMI, headers=factory.headers(mentor))).status_code == 200


async def check(redis, base: str, limit: int) -> list:
    """The script's exact check of one budget, adding nothing first."""
    return await redis.eval(SLIDING_WINDOW, 1, base, WINDOW_SECONDS, 0, 1, limit)


async def test_retry_after_is_when_the_sliding_window_has_room(settings, redis):
    """Lua on Redis's clock: a full current minute waits for its end; a previous minute
    that used twice the budget still weighs on this one until 33 s into it."""
    base = f"{settings.redis_prefix}ratelimit:test:{uuid.uuid4()}"
    seconds, micros = await redis.time()
    now = seconds + micros / 1e6
    if now % WINDOW_SECONDS > WINDOW_SECONDS - 5:
        # The keys and expectations below are for the minute `now` is in: start in the next
        # one rather than cross into it half-way (a 0.05 % chance per run otherwise).
        await asyncio.sleep(WINDOW_SECONDS - now % WINDOW_SECONDS + 0.1)
        seconds, micros = await redis.time()
        now = seconds + micros / 1e6
    index = int(now // WINDOW_SECONDS)
    elapsed = now - index * WINDOW_SECONDS
    await redis.set(f"{base}:{index}", 10, ex=120)
    admitted, wait, *_ = await check(redis, base, 10)
    assert admitted == 0 and abs(wait - (WINDOW_SECONDS - elapsed)) <= 2

    await redis.delete(f"{base}:{index}")
    await redis.set(f"{base}:{index - 1}", 20, ex=120)
    admitted, wait, *_ = await check(redis, base, 10)
    if elapsed < 32:  # 20 * (60 - t) / 60 + 1 > 10 until t = 33
        assert admitted == 0 and abs(wait - (33 - elapsed)) <= 2
    else:
        assert admitted == 1
    await redis.delete(f"{base}:{index - 1}", f"{base}:{index}")
    admitted, _, _, _, current, previous = await check(redis, base, 10)
    assert (admitted, current, previous) == (1, 1, 0)
    assert int(await redis.get(f"{base}:{index}")) == 1  # counted once, with an expiry
    assert 0 < await redis.ttl(f"{base}:{index}") <= 2 * WINDOW_SECONDS


class HeldFlushes:
    """The limiter's timer flushes, held until the test lets each one go: the timer fires
    on its own (`FLUSH_SECONDS` after a process's first unsent request), but the flush it
    starts waits for `release()`. So how long the requests take on a busy machine cannot
    decide which of them a flush carries, or how many flushes there are."""

    def __init__(self, monkeypatch) -> None:
        self.fired: list[asyncio.Future] = []
        self._gate = asyncio.Event()
        real_start = RateLimiter._start_flush

        def held(limiter: RateLimiter, redis) -> None:
            async def when_released() -> None:
                await self._gate.wait()
                real_start(limiter, redis)
                await asyncio.gather(*limiter._flushing)

            self.fired.append(asyncio.ensure_future(when_released()))

        monkeypatch.setattr(RateLimiter, "_start_flush", held)

    async def fires(self, count: int) -> None:
        async def fired() -> bool:
            return len(self.fired) == count

        await wait_until(fired, within=20, message=f"{count} flush timer(s) to fire")

    async def release(self) -> None:
        """Lets the fired flushes go and waits until Redis has answered each."""
        self._gate.set()
        async with asyncio.timeout(20):
            await asyncio.gather(*self.fired)
        self.fired.clear()
        self._gate = asyncio.Event()


async def test_a_process_counts_locally_and_shares_its_counts_through_redis(
        settings, factory, redis, monkeypatch):
    """Far from a limit a request costs no Redis call: the process counts it and sends its
    counts in one call when its flush timer fires; from half the budget on, each request
    is checked in Redis. A second process (another replica) sees the first one's counts."""
    calls = []
    real_call = RateLimiter._call

    async def counted(self, *args):
        calls.append(args[3] is not None)  # True: an exact check, False: a flush
        return await real_call(self, *args)

    monkeypatch.setattr(RateLimiter, "_call", counted)
    flushes = HeldFlushes(monkeypatch)
    mentor = await factory.mentor()
    async with app_with(settings, rate_limit_per_minute=20) as http:
        for _ in range(9):  # 9 + 1 <= 20 * LOCAL_SHARE: admitted locally
            assert (await http.get(WHOAMI, headers=factory.headers(mentor))).status_code == 200
        assert calls == []
        await flushes.fires(1)  # one timer for nine requests...
        await flushes.release()
        assert calls == [False]  # ...and one flush
        key = f"{settings.redis_prefix}ratelimit:sub:{mentor.id}"
        counters = await redis.keys(key + ":*")
        assert sum(int(value) for value in await redis.mget(counters)) == 9
    # Another replica: it knows nothing yet, so its first requests are local (5 more:
    # 14 in all); once Redis told it about the 14, every request is an exact check.
    calls.clear()
    async with app_with(settings, rate_limit_per_minute=20) as http:
        statuses = []
        for _ in range(5):
            statuses.append((await http.get(WHOAMI, headers=factory.headers(mentor))).status_code)
        await flushes.fires(1)
        await flushes.release()
        for _ in range(8):
            statuses.append((await http.get(WHOAMI, headers=factory.headers(mentor))).status_code)
        assert len(flushes.fired) == 0  # exact checks send their counts themselves
    assert statuses == [200] * 11 + [429] * 2  # the budget of 20 is shared: 9 + 11
    assert calls == [False] + [True] * 8


async def test_per_ip_limits_only_behind_a_trusted_proxy(settings, factory):
    client_a, client_b = "203.0.113.7", "203.0.113.8"
    async with app_with(settings, rate_limit_ip_per_minute=3,
                        trusted_proxies=["127.0.0.0/8"]) as http:
        for _ in range(3):  # anonymous requests count too
            response = await http.get(WHOAMI, headers={"X-Forwarded-For": client_a})
            assert response.status_code == 401
        assert_rate_limited(await http.get(WHOAMI, headers={"X-Forwarded-For": client_a}))
        # A proxy chain: the right-most untrusted hop is the client.
        assert_rate_limited(await http.get(WHOAMI, headers={
            "X-Forwarded-For": f"198.51.100.1, {client_a}, 127.0.0.2"}))
        assert (await http.get(WHOAMI, headers={"X-Forwarded-For": client_b})
                ).status_code == 401
    # No trusted proxy: the peer may be a load balancer shared by everyone; no IP limit.
    async with app_with(settings, rate_limit_ip_per_minute=3) as http:
        for _ in range(6):
            assert (await http.get(WHOAMI, headers={"X-Forwarded-For": client_a})
                    ).status_code == 401
    # A peer that is not a trusted proxy cannot choose its address with the header.
    async with app_with(settings, rate_limit_ip_per_minute=3,
                        trusted_proxies=["10.0.0.0/8"]) as http:
        statuses = [(await http.get(WHOAMI, headers={"X-Forwarded-For": f"192.0.2.{n}"})
                     ).status_code for n in range(4)]
    assert statuses[-1] == 429


# `uptime`: what time.monotonic() reads in the limiter; a machine booted under a minute ago
# reads under 60 s, and the first complaint must still be logged.
@pytest.mark.parametrize("uptime", [None, 5.0])
async def test_the_limiter_fails_open_and_says_so_when_redis_is_down(settings, factory,
                                                                    caplog, monkeypatch,
                                                                    uptime):
    if uptime is not None:
        monkeypatch.setattr(ratelimit, "time", SimpleNamespace(
            monotonic=lambda: uptime, time=time.time))
    mentor = await factory.mentor()
    async with app_with(settings, rate_limit_per_minute=1,
                        redis_url="redis://127.0.0.1:1/0") as http:
        for _ in range(3):
            response = await http.get(WHOAMI, headers=factory.headers(mentor))
            assert response.status_code == 200
    said = [r for r in caplog.records
            if r.name == "app.ratelimit" and "rate_limit_unavailable" in r.getMessage()]
    assert len(said) == 1  # once a minute, not once per request


async def test_health_probes_are_never_limited(settings):
    async with app_with(settings, rate_limit_ip_per_minute=1,
                        trusted_proxies=["127.0.0.0/8"]) as http:
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("given", [None, "Bearer wrong", "Basic abc"])
async def test_metrics_behind_a_token(settings, given):
    async with app_with(settings, metrics_token=SecretStr("s3cret-metrics-token")) as http:
        headers = {"Authorization": given} if given else {}
        response = await http.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"
        ok = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert ok.status_code == 200 and "mentorship_" in ok.text
