"""The request pipeline: one pure-ASGI layer for what every request goes through.

In order, outermost first: the request id (`X-Request-ID` in, the same or a new one out,
bound to every log line of the request), the HTTP metrics (requests by route template,
latency to the response headers, requests in progress), CORS when origins are configured
(so a 413, 429 or 503 carries CORS headers), admission control (app/core/admission.py:
refuses before any Redis or DB work), the rate limit (app/core/ratelimit.py: counted in
the process, shared through Redis every 50 ms), the request body size limit (413), then
the app; at the end, the one access log line. One layer rather than five stacked ones:
each layer cost a coroutine frame and a `send` wrapper per request, for the same
behaviour.

Pure ASGI (no BaseHTTPMiddleware) so streamed responses (SSE) pass straight through.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.core import telemetry
from app.core.admission import AdmissionControl, answered
from app.core.errors import problem
from app.core.logging import log_access
from app.core.ratelimit import EXEMPT_PATHS as RATE_LIMIT_EXEMPT
from app.core.ratelimit import refuse, verified_principal
from app.core.telemetry import route_template

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_EXCHANGE = "app.exchange"  # the scope key of a request's `_Exchange`


class PayloadTooLarge(HTTPException):
    """An HTTPException, so FastAPI re-raises it from body parsing as is (any other error
    there becomes a 400) and the problem handler renders 413 `payload_too_large`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds {limit} bytes")


class _Exchange:
    """What the pipeline tracks of one request."""

    __slots__ = ("status", "headers_at", "slot_held", "content_length")

    def __init__(self, content_length: bytes | None) -> None:
        self.status = 500
        self.headers_at: float | None = None
        self.slot_held = False
        self.content_length = content_length


class RequestPipeline:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.max_bytes = settings.max_body_bytes
        self.admission = AdmissionControl(
            settings.max_in_flight_requests,
            queue_wait_seconds=settings.admission_queue_wait_ms / 1000,
            retry_after_seconds=settings.overload_retry_after_seconds)
        self._guarded_app: ASGIApp = self._guarded
        if settings.cors_origins:
            self._guarded_app = CORSMiddleware(
                self._guarded, allow_origins=settings.cors_origins, allow_credentials=False,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID",
                               "Last-Event-ID"],
                expose_headers=["X-Request-ID"], max_age=600,
            )
        # Labelled metric series by label values: prometheus-client's labels() takes a lock
        # and builds the key each time; these sets are small (route templates x methods x
        # statuses: METHODS and UNMATCHED bound them).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = content_length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value
            elif name == b"content-length":
                content_length = value
        request_id = (incoming.decode("latin-1") if incoming is not None else "")
        if not _SAFE_ID.match(request_id):
            request_id = uuid.uuid4().hex
        request_id_header = (b"x-request-id", request_id.encode())
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        entry_root_path = scope.get("root_path", "")
        started = time.perf_counter()
        exchange = scope[_EXCHANGE] = _Exchange(content_length)
        admission = self.admission

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.headers_at = time.perf_counter()
                message.setdefault("headers", []).append(request_id_header)
            await send(message)
            # Out of the admission count once answered (app/core/admission.py `answered`).
            if exchange.slot_held and answered(message):
                exchange.slot_held = False
                admission.release()

        telemetry.HTTP_IN_PROGRESS.inc()
        try:
            await self._guarded_app(scope, receive, send_observed)
        finally:
            if exchange.slot_held:
                exchange.slot_held = False
                admission.release()
            telemetry.HTTP_IN_PROGRESS.dec()
            finished = time.perf_counter()
            method = scope["method"]
            route = route_template(scope, entry_root_path)
            self._observe(method if method in telemetry.METHODS else "OTHER", route,
                          exchange.status, (exchange.headers_at or finished) - started)
            principal = scope["state"].get("principal")
            # Only the path, never the query string: it may carry `access_token`.
            log_access(method=method, path=scope["path"], route=route, status=exchange.status,
                       user_id=str(principal.user_id) if principal else None,
                       duration_ms=round((finished - started) * 1000, 2))

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counted.get((method, route, status))
        if counter is None:
            counter = self._counted[(method, route, status)] = telemetry.HTTP_REQUESTS.labels(
                method, route, str(status))
        histogram = self._timed.get((method, route))
        if histogram is None:
            histogram = self._timed[(method, route)] = telemetry.HTTP_LATENCY.labels(
                method, route)
        counter.inc()
        histogram.observe(seconds)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admission, rate limit and body size, then the app (inside CORS when configured)."""
        exchange: _Exchange = scope[_EXCHANGE]
        admission = self.admission
        if admission.applies(scope):
            if not await admission.admit():
                await admission.refuse(scope, receive, send)
                return
            exchange.slot_held = True
        if scope["path"] not in RATE_LIMIT_EXEMPT:
            principal = verified_principal(scope, self.settings)
            shared = getattr(scope["app"].state, "shared", None) if "app" in scope else None
            if shared is not None:
                limiter = shared.limiter
                limits = limiter.limits_for(principal, limiter.client_ip(scope))
                if limits:
                    wait = await limiter.retry_after(shared.redis, limits)
                    if wait is not None:
                        await refuse(scope, receive, send, wait)
                        return
        await self._limit_body(scope, receive, send, exchange)

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send,
                          exchange: _Exchange) -> None:
        """Rejects request bodies over `max_bytes` with 413 problem JSON: at once when
        Content-Length says so, and while reading a chunked (or understated) body, before
        the route sees more than the limit."""
        max_bytes = self.max_bytes
        if exchange.content_length is not None:
            try:
                too_large = int(exchange.content_length) > max_bytes
            except ValueError:
                too_large = False  # the server rejects a malformed length itself
            if too_large:
                await self._reject_body(scope, receive, send)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise PayloadTooLarge(max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except PayloadTooLarge:
            # Raised where no handler turned it into a response (plain Starlette mounts).
            if exchange.headers_at is not None:
                raise
            await self._reject_body(scope, receive, send)

    async def _reject_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request  # the problem body names the path

        response = problem(413, "payload_too_large", "Payload too large",
                           f"The request body exceeds {self.max_bytes} bytes",
                           Request(scope), headers={"Connection": "close"})
        await response(scope, receive, send)
