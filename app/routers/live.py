"""The live mentor dashboard over Server-Sent Events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Query
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from app.core.auth import Principal, require_roles
from app.core.state import StateDep
from app.schemas.common import problem_responses
from app.services.live.streams import LiveStream, admit_stream, start_stream

router = APIRouter(tags=["mentor"])
log = structlog.get_logger("app.realtime")


class DashboardStream(EventSourceResponse):
    """sse-starlette's response (headers, encoding, send timeout, HEAD, disconnect
    detection), run with one task beside the request's instead of a task group of three.

    EventSourceResponse gives every stream an anyio task group: the sender, a disconnect
    listener and a shutdown listener (a fourth, the ping, is off: the stream pings itself).
    At thousands of idle streams per process those tasks were the largest part of a
    stream's memory (about 13 of 48 KiB, bench/RESULTS.md). Here the events are sent from
    the request's own task, the disconnect listener is the one extra task, and shutdown is
    watched once per process by the StreamHub."""

    def __init__(self, live: LiveStream, *, send_timeout: float) -> None:
        super().__init__(live.events(), ping=0, send_timeout=send_timeout)
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].upper() == "HEAD":
            await super().__call__(scope, receive, send)
            return
        listener = asyncio.get_running_loop().create_task(self._until_disconnect(receive))
        try:
            await self._stream_response(send)
        except SendTimeoutError:
            # A client that stopped reading: its stream is already closed; a log line, not
            # a traceback. uvicorn drops the socket.
            log.info("sse_client_too_slow")
        finally:
            listener.cancel()
            self.live.release()  # also when the stream never started

    async def _until_disconnect(self, receive: Receive) -> None:
        await self._listen_for_disconnect(receive)
        self.live.stop()


# EventSource cannot send headers, so the token may also come as `?access_token=`
# (never logged: see app/core/logging.py and app/core/middleware.py).
StreamingMentor = Annotated[Principal, Depends(require_roles("mentor", allow_query_token=True))]

STREAM_DESCRIPTION = """\
Server-Sent Events. The first event is `snapshot` (the body of `GET /api/v1/mentor/dashboard`),
then each outbound event concerning the mentor as it happens: `event:` is the event type,
`data:` the event envelope (JSON), `id:` its position in the mentor's stream. A comment ping
is sent at least every 15 s and `retry:` says how long to wait before reconnecting.

Reconnecting with `Last-Event-ID` (browsers do it themselves; or `?last_event_id=`) replays
every event missed since that id, in order, once; when some of them are no longer kept (the
stream was trimmed past it, or lost and re-created: ids are `<epoch>-<ms>-<seq>`), a fresh
`snapshot` comes instead. The stream ends with a `token_expired` event when the token
expires: reconnect with a new token (and `?last_event_id=`).
"""


@router.get(
    "/api/v1/mentor/dashboard/stream",
    operation_id="stream_mentor_dashboard",
    summary="Live dashboard: a snapshot, then events as they happen (SSE)",
    description=STREAM_DESCRIPTION,
    response_class=EventSourceResponse,
    responses={
        200: {"description": "An endless `text/event-stream`.",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 422, 429, 503),
    },
)
async def stream_dashboard(
    state: StateDep,
    principal: StreamingMentor,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="The last `id:` received.")
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(alias="last_event_id", description="Same as `Last-Event-ID`, for a new "
                                                 "EventSource (e.g. after a token refresh)."),
    ] = None,
) -> EventSourceResponse:
    settings, hub = state.settings, state.hub
    slot = admit_stream(hub, principal)
    try:
        start = await start_stream(hub=hub, redis=state.redis, db=state.db,
                                   principal=principal,
                                   last_event_id=last_event_id or last_event_id_query,
                                   now=datetime.now(UTC))
    except BaseException:
        slot.release()
        raise
    return DashboardStream(LiveStream(hub, start, expires_at=principal.expires_at, slot=slot),
                           send_timeout=settings.sse_send_timeout_seconds)
