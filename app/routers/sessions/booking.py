"""Sessions (mentor and mentee), session feedback and the calendar feed."""

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Response

from app.core.auth import CurrentMentee, CurrentMentor, Principal, require_roles
from app.core.db import DbSession, DbSessionQueryToken
from app.core.instants import BoundedDatetime
from app.core.jobqueue import schedule_capacity_check
from app.core.problems import problems
from app.core.state import SettingsDep, StateDep
from app.schemas.common import Page
from app.schemas.sessions import (
    FeedbackCreate,
    FeedbackPublic,
    MenteeSessionCreate,
    MenteeSessionPublic,
    MenteeSessionUpdate,
    MentorSessionPublic,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
)
from app.services.sessions import booking, calendar, changes, queries
from app.services.sessions.video import VideoProvider

router = APIRouter()


async def video_provider(state: StateDep) -> VideoProvider:
    return state.video


Video = Annotated[VideoProvider, Depends(video_provider)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=1000,
                                    description="`next_cursor` of the previous page")]
From = Annotated[BoundedDatetime | None,
                 Query(alias="from", description="Sessions starting at or after this instant")]
To = Annotated[BoundedDatetime | None,
               Query(alias="to", description="Sessions starting before this instant")]
# The booking rules' 409s (app/services/sessions/slots.py) and the video provider's 503.
BOOKING = ["double_booking", "capacity_exceeded", "outside_availability"]
VIDEO = ["video_provider_unavailable"]
CalendarCaller = Annotated[
    Principal, Depends(require_roles("mentor", "mentee", allow_query_token=True))
]


# --- mentor -----------------------------------------------------------------------------------

@router.post(
    "/api/v1/mentor/sessions",
    tags=["mentor sessions"],
    operation_id="book_session",
    summary="Book a session with one of your mentees",
    description="Inside your availability (your time zone), outside your time off, within "
                "the ISO week's capacity, not overlapping another live session of you "
                "(widened by your buffer) or of the mentee. Your minimum notice does not "
                "bind you. Returns the session with its `meeting_url`. 409 codes: "
                "`double_booking`, `capacity_exceeded`, `outside_availability`.",
    status_code=201,
    response_model=MentorSessionPublic,
    responses=problems({404: ["not_assigned"], 409: BOOKING, 503: VIDEO}),
)
async def book_session(body: SessionCreate, principal: CurrentMentor, session: DbSession,
                       state: StateDep, video: Video,
                       background: BackgroundTasks) -> MentorSessionPublic:
    settings = state.settings
    booked = await booking.book_session(
        session, principal=principal, settings=settings, video=video,
        mentee_id=body.mentee_id, starts_at=body.starts_at,
        duration_minutes=body.duration_minutes, agenda=body.agenda,
    )
    # Background tasks run after the response, so after the booking committed.
    background.add_task(schedule_capacity_check, state.redis, settings,
                        principal.user_id, booked.starts_at)
    return booked


@router.get(
    "/api/v1/mentor/sessions",
    tags=["mentor sessions"],
    operation_id="list_mentor_sessions",
    summary="Your sessions, by start time (`?from=&to=`)",
    response_model=Page[MentorSessionPublic],
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_mentor_sessions(
    principal: CurrentMentor, session: DbSession, starts_from: From = None, starts_to: To = None,
    status: SessionStatus | None = None, mentee_id: uuid.UUID | None = None,
    limit: Limit = 50, cursor: Cursor = None,
) -> Page[MentorSessionPublic]:
    items, next_cursor = await queries.list_mentor_sessions(
        session, principal=principal, starts_from=starts_from, starts_to=starts_to,
        status=status, mentee_id=mentee_id, limit=limit, cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/api/v1/mentor/sessions/{session_id}",
    tags=["mentor sessions"],
    operation_id="get_mentor_session",
    summary="One of your sessions",
    response_model=MentorSessionPublic,
    responses=problems({404: ["not_found"]}),
)
async def get_mentor_session(session_id: uuid.UUID, principal: CurrentMentor,
                             session: DbSession) -> MentorSessionPublic:
    return await queries.get_mentor_session(session, principal=principal, session_id=session_id)


@router.patch(
    "/api/v1/mentor/sessions/{session_id}",
    tags=["mentor sessions"],
    operation_id="update_mentor_session",
    summary="Reschedule, cancel or complete a session",
    description="Reschedule (`starts_at`, `duration_minutes`; every booking rule is checked "
                "again and the calendar SEQUENCE goes up), cancel (`status: cancelled`, "
                "`reason`) or complete (`status: completed` or `no_show`, `mentor_notes`, only "
                "once the session has started). Only scheduled sessions change: anything "
                "else is 409 `invalid_transition`.",
    response_model=MentorSessionPublic,
    responses=problems({404: ["not_found", "not_assigned"],
                        409: ["invalid_transition", *BOOKING, "concurrent_change"],
                        503: VIDEO}),
)
async def update_mentor_session(session_id: uuid.UUID, body: SessionUpdate,
                                principal: CurrentMentor, session: DbSession, state: StateDep,
                                video: Video, background: BackgroundTasks) -> MentorSessionPublic:
    settings = state.settings
    updated = await changes.update_session(
        session, principal=principal, settings=settings, video=video,
        session_id=session_id, changes=body,
    )
    if body.is_reschedule:  # check the week it landed in
        background.add_task(schedule_capacity_check, state.redis, settings,
                            principal.user_id, updated.starts_at)
    return updated


# --- mentee -----------------------------------------------------------------------------------

@router.get(
    "/api/v1/mentee/sessions",
    tags=["mentee sessions"],
    operation_id="list_mentee_sessions",
    summary="Your sessions, by start time (`?from=&to=`)",
    response_model=Page[MenteeSessionPublic],
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_mentee_sessions(
    principal: CurrentMentee, session: DbSession, starts_from: From = None, starts_to: To = None,
    status: SessionStatus | None = None, limit: Limit = 50, cursor: Cursor = None,
) -> Page[MenteeSessionPublic]:
    items, next_cursor = await queries.list_mentee_sessions(
        session, principal=principal, starts_from=starts_from, starts_to=starts_to,
        status=status, limit=limit, cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/api/v1/mentee/sessions",
    tags=["mentee sessions"],
    operation_id="book_mentee_session",
    summary="Book a session with your mentor",
    description="Every booking rule of the mentor's route (availability, time off, buffer, "
                "weekly capacity, both people's sessions) plus the mentor's minimum notice: "
                "any start listed by `GET /api/v1/mentee/slots` books unless taken "
                "meanwhile. 409 codes: `no_mentor`, `double_booking`, `capacity_exceeded`, "
                "`outside_availability`, `notice_too_short`.",
    status_code=201,
    response_model=MenteeSessionPublic,
    responses=problems({409: [*BOOKING, "notice_too_short", "no_mentor"], 503: VIDEO}),
)
async def book_mentee_session(body: MenteeSessionCreate, principal: CurrentMentee,
                              session: DbSession, state: StateDep, video: Video,
                              background: BackgroundTasks) -> MenteeSessionPublic:
    settings = state.settings
    booked = await booking.book_mentee_session(
        session, principal=principal, settings=settings, video=video,
        starts_at=body.starts_at, duration_minutes=body.duration_minutes, agenda=body.agenda)
    background.add_task(schedule_capacity_check, state.redis, settings,
                        booked.mentor_id, booked.starts_at)
    return booked


@router.patch(
    "/api/v1/mentee/sessions/{session_id}",
    tags=["mentee sessions"],
    operation_id="update_mentee_session",
    summary="Reschedule or cancel one of your sessions",
    description="Reschedule (`starts_at`, `duration_minutes`: every booking rule, minimum "
                "notice included) or cancel (`status: cancelled`, `reason`), no later than "
                "`SESSION_CHANGE_NOTICE_HOURS` (default 24) before the current start: "
                "409 `too_late_to_change`. Other 409 codes: `no_mentor`, "
                "`invalid_transition`, and the booking codes for a reschedule.",
    response_model=MenteeSessionPublic,
    responses=problems({404: ["not_found"], 409: [
        "too_late_to_change", *BOOKING, "notice_too_short", "invalid_transition", "no_mentor",
        "concurrent_change"],
        503: VIDEO}),
)
async def update_mentee_session(session_id: uuid.UUID, body: MenteeSessionUpdate,
                                principal: CurrentMentee, session: DbSession,
                                state: StateDep, video: Video,
                                background: BackgroundTasks) -> MenteeSessionPublic:
    settings = state.settings
    updated = await changes.update_mentee_session(
        session, principal=principal, settings=settings, video=video,
        session_id=session_id, changes=body)
    if body.is_reschedule:
        background.add_task(schedule_capacity_check, state.redis, settings,
                            updated.mentor_id, updated.starts_at)
    return updated


@router.post(
    "/api/v1/mentee/sessions/{session_id}/feedback",
    tags=["mentee sessions"],
    operation_id="give_session_feedback",
    summary="Rate a completed session (once)",
    description="409 `session_not_completed` unless the session is completed; 409 "
                "`feedback_exists` when feedback was already given.",
    status_code=201,
    response_model=FeedbackPublic,
    responses=problems({404: ["not_found"], 409: ["feedback_exists", "session_not_completed"]}),
)
async def give_session_feedback(session_id: uuid.UUID, body: FeedbackCreate,
                                principal: CurrentMentee, session: DbSession) -> FeedbackPublic:
    return await queries.give_feedback(session, principal=principal, session_id=session_id,
                                       rating=body.rating, comment=body.comment)


# --- calendar ---------------------------------------------------------------------------------

@router.get(
    "/api/v1/calendar.ics",
    tags=["calendar"],
    operation_id="calendar_feed",
    summary="Your sessions as an iCalendar feed (mentor or mentee)",
    description="Bearer token, or `?access_token=` so a calendar app can subscribe. "
                "Cancelled sessions appear with STATUS:CANCELLED.",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {"schema": {"type": "string"}}},
              "description": "An iCalendar (RFC 5545) document"}
    },
)
async def calendar_feed(principal: CalendarCaller, session: DbSessionQueryToken,
                        settings: SettingsDep) -> Response:
    body = await calendar.calendar_feed(session, principal=principal, settings=settings)
    return Response(
        content=body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": 'inline; filename="mentorship.ics"',
                 "Cache-Control": "private, max-age=300"},
    )

