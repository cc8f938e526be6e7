"""Overload without collapse (app/core/admission.py): past MAX_IN_FLIGHT_REQUESTS, or with
no DB connection within DB_POOL_TIMEOUT_SECONDS, 503 `overloaded` with Retry-After, never
a 500; probes and open SSE streams take no slot. Floods go to real uvicorn processes over
real sockets (real concurrency); the slot mechanics are also checked in-process, where the
timing is under the test's control."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from app.core.middleware import RequestPipeline
from tests.live.test_sse import stream
from tests.support.live import LiveServer

PROFILE = "/api/v1/mentor/profile"
FLOOD = 80


@pytest.fixture(scope="module")
def tiny():
    """Two requests in flight at most, no queue wait: any overlap beyond two is refused."""
    server = LiveServer.start({"MAX_IN_FLIGHT_REQUESTS": "2", "ADMISSION_QUEUE_WAIT_MS": "0",
                               "SSE_MAX_STREAMS_PER_USER": "10"})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def _flood(url: str, headers: dict[str, str], n: int = FLOOD,
                 path: str = PROFILE) -> list[tuple[httpx.Response, float]]:
    """`n` requests at once, each on its own connection; (response, seconds) each."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        async def one() -> tuple[httpx.Response, float]:
            started = time.perf_counter()
            response = await http.get(path, headers=headers)
            return response, time.perf_counter() - started
        return await asyncio.gather(*(one() for _ in range(n)))


def _assert_overloaded(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "overloaded"
    assert int(response.headers["retry-after"]) >= 1


async def test_a_flood_past_the_limit_gets_503_overloaded_never_500(tiny, factory):
    mentor = await factory.mentor()
    results = await _flood(tiny.url, factory.headers(mentor))
    statuses = Counter(response.status_code for response, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 2 and statuses[503] >= 1, statuses
    for response, _ in results:
        if response.status_code == 503:
            _assert_overloaded(response)
            assert response.headers["x-request-id"]  # logged and traceable like any other
    # Refused at once, not after a queue: the slowest refusal is quicker than the slowest
    # admitted request (which did the work behind the limit).
    refused = max(s for r, s in results if r.status_code == 503)
    admitted = max(s for r, s in results if r.status_code == 200)
    assert refused <= admitted, (refused, admitted)


async def test_probes_are_never_refused(tiny, factory):
    mentor = await factory.mentor()
    flood = asyncio.ensure_future(_flood(tiny.url, factory.headers(mentor)))
    probes = await asyncio.gather(*(
        _flood(tiny.url, {}, n=10, path=path) for path in ("/healthz", "/metrics")))
    await flood
    assert all(response.status_code == 200 for batch in probes for response, _ in batch)


async def test_open_sse_streams_take_no_slot(tiny, factory):
    mentor = await factory.mentor()
    token = factory.token(mentor)
    # Three open streams against a limit of two: if they were counted, every later
    # request would be refused.
    async with stream(tiny, token), stream(tiny, token), stream(tiny, token):
        async with httpx.AsyncClient(base_url=tiny.url, timeout=10) as http:
            for _ in range(5):
                response = await http.get(PROFILE, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, response.text


async def test_no_connection_within_the_pool_timeout_is_503_overloaded(factory):
    """No admission limit, one pooled connection and a 10 ms pool wait: the DB pool is the
    bottleneck, and its timeout answers like the admission limit (before: a 500)."""
    server = LiveServer.start({"MAX_IN_FLIGHT_REQUESTS": "0", "DB_POOL_SIZE": "1",
                               "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT_SECONDS": "0.01"})
    try:
        server.wait_ready()
        mentor = await factory.mentor()
        results = await _flood(server.url, factory.headers(mentor))
    finally:
        server.stop()
    statuses = Counter(response.status_code for response, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 1 and statuses[503] >= 1, statuses
    for response, _ in results:
        if response.status_code == 503:
            _assert_overloaded(response)
    assert "unhandled_error" not in server.logs()


# --- the slot mechanics, in-process -----------------------------------------------------------

def _pipeline(app, settings, *, queue_wait_ms: int, retry_after: int = 1) -> RequestPipeline:
    """The app's request pipeline (app/core/middleware.py) around `app`, one slot."""
    return RequestPipeline(app, settings.model_copy(update={
        "max_in_flight_requests": 1, "admission_queue_wait_ms": queue_wait_ms,
        "overload_retry_after_seconds": retry_after}))


def _held_app(release: asyncio.Event, content_type: bytes = b"application/json"):
    """An endpoint that starts its response, then holds until `release` is set (any path
    but the probe's, which answers at once)."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type)]})
        if scope["path"] != "/healthz":
            await release.wait()
        await send({"type": "http.response.body", "body": b"{}"})
    return app


async def _call(app, path: str = "/x", sent: list[dict] | None = None) -> list[dict]:
    sent = [] if sent is None else sent

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [],
             "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("t", 80)}
    await app(scope, receive, send)
    return sent


async def test_a_slot_freed_within_the_queue_wait_admits_the_waiting_request(settings):
    release = asyncio.Event()
    pipeline = _pipeline(_held_app(release), settings, queue_wait_ms=5000)
    first = asyncio.ensure_future(_call(pipeline))
    await asyncio.sleep(0.01)
    assert pipeline.admission.in_flight == 1
    second = asyncio.ensure_future(_call(pipeline))
    await asyncio.sleep(0.01)
    assert not second.done()  # waiting in line, not refused
    release.set()
    assert (await first)[0]["status"] == 200
    assert (await second)[0]["status"] == 200
    assert pipeline.admission.in_flight == 0


async def test_past_the_queue_wait_the_answer_is_503_and_the_slot_count_is_exact(settings):
    release = asyncio.Event()
    pipeline = _pipeline(_held_app(release), settings, queue_wait_ms=20, retry_after=3)
    first = asyncio.ensure_future(_call(pipeline))
    await asyncio.sleep(0.01)
    refused = await _call(pipeline)
    assert refused[0]["status"] == 503
    assert (b"retry-after", b"3") in refused[0]["headers"]
    assert (await _call(pipeline, "/healthz"))[0]["status"] == 200  # exempt while full
    release.set()
    await first
    assert pipeline.admission.in_flight == 0


def _answers_then_holds(release: asyncio.Event):
    """An endpoint that completes its response, then keeps working until `release` (as
    FastAPI runs a background task, e.g. a booking's capacity-check enqueue)."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        await release.wait()
    return app


async def _statuses_while_held(app, release: asyncio.Event, n: int) -> list[int]:
    """`n` requests one after another while the first ones' work goes on: each one's
    status once its response is complete (the calls finish only after `release`)."""
    calls, seen = [], []
    for _ in range(n):
        sent: list[dict] = []
        seen.append(sent)
        calls.append(asyncio.ensure_future(_call(app, "/x", sent)))
        await asyncio.sleep(0.01)
    statuses = [sent[0]["status"] for sent in seen]
    release.set()
    await asyncio.gather(*calls)
    return statuses


async def test_work_after_a_complete_response_holds_no_slot(settings):
    release = asyncio.Event()
    pipeline = _pipeline(_answers_then_holds(release), settings, queue_wait_ms=0)
    assert await _statuses_while_held(pipeline, release, 3) == [200, 200, 200]  # no 503
    assert pipeline.admission.in_flight == 0


async def test_an_event_stream_gives_its_slot_back_when_its_response_starts(settings):
    release = asyncio.Event()
    pipeline = _pipeline(_held_app(release, b"text/event-stream; charset=utf-8"), settings,
                          queue_wait_ms=0)
    streams = [asyncio.ensure_future(_call(pipeline)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert pipeline.admission.in_flight == 0
    assert not any(s.done() for s in streams)  # all three open at once under a limit of 1
    release.set()
    await asyncio.gather(*streams)
    assert pipeline.admission.in_flight == 0
