"""Pure ASGI middleware: request id and access log line; request body size limit.

Pure ASGI (no BaseHTTPMiddleware) so streamed responses (SSE) pass straight through.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem
from app.core.telemetry import route_template

log = structlog.get_logger("app.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        entry_root_path = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = scope.get("state", {}).get("principal")
            # Only the path, never the query string: it may carry `access_token`.
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route_template(scope, entry_root_path),
                status=status,
                user_id=str(principal.user_id) if principal else None,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


class PayloadTooLarge(HTTPException):
    """An HTTPException, so FastAPI re-raises it from body parsing as is (any other error
    there becomes a 400) and the problem handler renders 413 `payload_too_large`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds {limit} bytes")


class BodySizeLimitMiddleware:
    """Rejects request bodies over `max_bytes` with 413 problem JSON: at once when
    Content-Length says so, and while reading a chunked (or understated) body, before the
    route sees more than the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request  # the problem body names the path

        response = problem(413, "payload_too_large", "Payload too large",
                           f"The request body exceeds {self.max_bytes} bytes",
                           Request(scope), headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False  # the server rejects a malformed length itself
            if too_large:
                await self._reject(scope, receive, send)
                return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge:
            # Raised where no handler turned it into a response (plain Starlette mounts).
            if response_started:
                raise
            await self._reject(scope, receive, send)
