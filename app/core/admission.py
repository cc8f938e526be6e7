"""Admission control: a bound on the requests one process works on at once.

Without it, a process past its capacity accepts every connection and queues the work in the
event loop and the DB pool: latency grows for everyone (Little's law: 200 requests in flight
at 5 ms of CPU each is a second of queue) until clients time out, and the process does the
work anyway. With it, at most `MAX_IN_FLIGHT_REQUESTS` requests are inside the app; one more
waits up to `ADMISSION_QUEUE_WAIT_MS` for a slot, and past that it is answered at once with
503 `overloaded` and `Retry-After` (a load balancer or client retries elsewhere or later),
so the requests that are admitted keep their latency.

What is not counted:
- the probes (`/healthz`, `/readyz`, `/metrics`): an orchestrator must see an overloaded
  process as alive, and its metrics are how anyone sees it is overloaded;
- an SSE stream once its response has started (`text/event-stream`): streams are long-lived
  and mostly idle, and have their own per-process and per-user caps
  (app/services/live/streams.py). The stream's set-up (auth, snapshot) is counted;
- what a request does after its response is complete (FastAPI background tasks, such as a
  booking's capacity-check enqueue): the client is no longer waiting, and counting it let
  8 clients booking at full speed hold more than 16 slots (503s at normal load).

The DB pool's wait timeout (`DB_POOL_TIMEOUT_SECONDS`, app/core/db.py) is the second half:
a request that was admitted but finds no connection in time gets the same 503 (mapped in
app/core/errors.py), instead of queueing on the pool for SQLAlchemy's default 30 s.

Part of the one request pipeline (app/core/middleware.py): inside CORS (so a browser can
read the 503) and before the rate limiter (an overloaded process spends no Redis round trip
on a request it refuses).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from app.core.errors import Overloaded, problem

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
EVENT_STREAM = b"text/event-stream"


def answered(message: Message) -> bool:
    """Whether, with `message` sent, the request no longer counts as work in flight: its
    response is complete (what runs after it, FastAPI's background tasks such as a booking's
    capacity-check enqueue, is not the client's wait), or it started as an event stream
    (from here on an idle connection, bounded by the stream caps)."""
    if message["type"] == "http.response.body":
        return not message.get("more_body", False)
    return message["type"] == "http.response.start" and is_event_stream(message)


def is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return value.startswith(EVENT_STREAM)
    return False


class AdmissionControl:
    """At most `max_in_flight` requests admitted at once (0: no limit); a request over it
    waits up to `queue_wait_seconds` (FIFO: asyncio.Semaphore), then is refused.
    `in_flight` is what the process works on now (tests and metrics read it). Used by the
    request pipeline (app/core/middleware.py)."""

    def __init__(self, max_in_flight: int, queue_wait_seconds: float,
                 retry_after_seconds: int) -> None:
        self.max_in_flight = max_in_flight
        self.queue_wait_seconds = queue_wait_seconds
        self.retry_after = str(retry_after_seconds)
        self.slots = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None

    @property
    def in_flight(self) -> int:
        return 0 if self.slots is None else self.max_in_flight - self.slots._value

    def applies(self, scope: Scope) -> bool:
        return self.slots is not None and scope["path"] not in EXEMPT_PATHS

    async def admit(self) -> bool:
        """Take a slot: at once when one is free (no suspension, the common case), else
        wait in line up to the queue wait. False: refused (no slot taken)."""
        assert self.slots is not None
        if not self.slots.locked():
            await self.slots.acquire()  # returns without yielding when a slot is free
            return True
        try:
            async with asyncio.timeout(self.queue_wait_seconds):
                await self.slots.acquire()
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        assert self.slots is not None
        self.slots.release()

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            503, Overloaded.code, Overloaded.title,
            "The server is at capacity; retry after the delay in Retry-After.",
            Request(scope), headers={"Retry-After": self.retry_after})
        await response(scope, receive, send)
