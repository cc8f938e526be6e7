"""Live views over Server-Sent Events: the mentor dashboard, the directors' and the mentees'."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Query
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from app.core.auth import Principal, require_roles
from app.core.problems import problems
from app.core.state import AppState, StateDep
from app.services.dashboard.director import director_snapshot
from app.services.dashboard.mentees import mentee_home
from app.services.live.streams import (
    LiveStream,
    Snapshot,
    StreamHub,
    admit_stream,
    start_stream,
)

router = APIRouter()
# The mentor's, the directors' and the mentees' streams: one mechanism (app/services/live/),
# each user's own Redis stream, a snapshot of their view first.
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
StreamingStaff = Annotated[Principal, Depends(require_roles("director", "admin",
                                                            allow_query_token=True))]
StreamingMentee = Annotated[Principal, Depends(require_roles("mentee", allow_query_token=True))]

STREAM_DESCRIPTION = """\
Server-Sent Events. The first event is `snapshot` (the body of `GET /api/v1/mentor/dashboard`),
then each outbound event concerning the mentor as it happens: `event:` is the event type,
`data:` the event envelope (JSON), `id:` its position in the mentor's stream. A comment ping
is sent at least every 15 s and `retry:` says how long to wait before reconnecting.

Reconnecting with `Last-Event-ID` (browsers do it themselves; or `?last_event_id=`) replays
every event missed since that id, in order, once; when some of them are no longer kept (the
stream was trimmed past it, or lost and re-created: ids are `<epoch>-<ms>-<seq>`), a fresh
`snapshot` comes instead. The stream ends with a `token_expired` event when the token
expires: reconnect with a new token (and `?last_event_id=`). It ends with a `token_revoked`
event when the token stops being honoured (the user was deactivated or changed role; checked
again every `AUTH_CACHE_SECONDS`).
"""


STREAM_OK = {200: {"description": "An endless `text/event-stream`.",
                   "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
STREAM_LIMITS = {429: ["too_many_streams"], 503: ["stream_unavailable", "too_many_streams"]}
LastEventId = Annotated[
    str | None, Header(alias="Last-Event-ID", description="The last `id:` received.")]
LastEventIdQuery = Annotated[
    str | None,
    Query(alias="last_event_id", description="Same as `Last-Event-ID`, for a new "
                                             "EventSource (e.g. after a token refresh)."),
]


async def _open(state: AppState, principal: Principal, last_event_id: str | None,
                snapshot: Snapshot | None = None) -> EventSourceResponse:
    """Any user's stream: the same guarantees for mentors, directors and mentees."""
    settings, hub = state.settings, state.hub
    slot = admit_stream(hub, principal)  # 503 or 429 `too_many_streams`
    try:
        start = await start_stream(hub=hub, redis=state.redis, db=state.db,
                                   principal=principal, last_event_id=last_event_id,
                                   now=datetime.now(UTC), snapshot=snapshot)
    except BaseException:
        slot.release()
        raise
    live = open_live_stream(state, hub, start, principal)
    live.slot = slot
    return DashboardStream(live, send_timeout=settings.sse_send_timeout_seconds)


@router.get(
    "/api/v1/mentor/dashboard/stream",
    operation_id="stream_mentor_dashboard",
    tags=["mentor"],
    responses={**STREAM_OK, **problems({404: ["mentor_not_found"], **STREAM_LIMITS})},
    summary="Live dashboard: a snapshot, then events as they happen (SSE)",
    description=STREAM_DESCRIPTION,
    response_class=EventSourceResponse,
)
async def stream_dashboard(
    state: StateDep, principal: StreamingMentor, last_event_id: LastEventId = None,
    last_event_id_query: LastEventIdQuery = None,
) -> EventSourceResponse:
    return await _open(state, principal, last_event_id or last_event_id_query)


@router.get(
    "/api/v1/director/stream",
    operation_id="stream_director",
    responses={**STREAM_OK, **problems(STREAM_LIMITS)},
    summary="The directors' live view: a snapshot, then events as they happen (SSE)",
    description=STREAM_DESCRIPTION.replace(
        "the body of `GET /api/v1/mentor/dashboard`",
        "the programme metrics, unresolved flags by severity and the waiting count").replace(
        "concerning the mentor", "for directors (`flag.raised`, `flag.resolved`, "
        "`flag.escalated`, `capacity.exceeded`, `assignment.created`, `assignment.ended`, "
        "`matching.run_finished`, `risk.raised`, ...)").replace("the mentor's stream",
                                                                "the director's stream"),
    response_class=EventSourceResponse,
    tags=["director"],
)
async def stream_director(
    state: StateDep, principal: StreamingStaff, last_event_id: LastEventId = None,
    last_event_id_query: LastEventIdQuery = None,
) -> EventSourceResponse:
    async def snapshot(session):
        return await director_snapshot(session, now=datetime.now(UTC))

    return await _open(state, principal, last_event_id or last_event_id_query, snapshot)


@router.get(
    "/api/v1/mentee/stream",
    operation_id="stream_mentee",
    responses={**STREAM_OK, **problems({404: ["mentee_not_found"], **STREAM_LIMITS})},
    summary="The mentee's live view: a snapshot, then their own events (SSE)",
    description=STREAM_DESCRIPTION.replace(
        "the body of `GET /api/v1/mentor/dashboard`", "the body of `GET /api/v1/mentee/me`"
    ).replace("concerning the mentor", "concerning the mentee (their sessions, "
              "assignment, reviews; never flags or risk reasons)").replace(
        "the mentor's stream", "the mentee's stream"),
    response_class=EventSourceResponse,
    tags=["mentee"],
)
async def stream_mentee(
    state: StateDep, principal: StreamingMentee, last_event_id: LastEventId = None,
    last_event_id_query: LastEventIdQuery = None,
) -> EventSourceResponse:
    async def snapshot(session):
        return await mentee_home(session, mentee_id=principal.user_id, now=datetime.now(UTC))

    return await _open(state, principal, last_event_id or last_event_id_query, snapshot)


def open_live_stream(state: AppState, hub: StreamHub, start,
                     principal: Principal) -> LiveStream:
    """The stream's events, ending when the token expires or stops being honoured."""
    identities = state.identities

    async def still_honoured() -> bool:
        try:
            return await identities.honours(principal.user_id, principal.role)
        except (OSError, SQLAlchemyError):
            return True  # the database is unreachable: keep serving; checked again later

    return LiveStream(hub, start, expires_at=principal.expires_at,
                      still_honoured=still_honoured,
                      recheck_seconds=state.settings.auth_cache_seconds)
