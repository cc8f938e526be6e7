"""Booking, rescheduling, cancelling and completing sessions; the mentee's feedback.

Who decides what:
- overlaps: the database. Two exclusion constraints refuse a live session that overlaps
  another of the same mentor or mentee; the service flushes so the violation (23P01) is
  raised here and becomes 409 `double_booking`. There is no "check then insert" for overlaps.
- weekly capacity: counted after locking the mentor's `users` row (`FOR NO KEY UPDATE`, which
  does not block foreign-key checks of other inserts), so concurrent bookings of one mentor
  count one after another and never exceed `mentor_capacity_weekly`. The week is the ISO
  week in the mentor's own time zone.
- availability: `app/services/mentors/availability.py`, in the mentor's zone with zoneinfo.
- the video link: a remote meeting (Zoom) is created last, once the database accepted the
  row, inside the same transaction, so a provider failure rolls the booking back (nothing
  written) and a refused booking never creates a remote meeting. A local link (Jitsi room)
  has nothing to undo and is made before the insert, saving a round trip.

Lock order is always mentor row, then session row, so a reschedule (both) and a status
change (session row only) cannot deadlock each other.

Every change writes its outbound event to the outbox in the same transaction. A completed
(or no-show) session also opens a `session_followup` work item for the mentor
(source_key `session.completed:<id>`, so it is created once): the follow-up note or the
reaching out after a missed session is exactly the kind of task the work queue tracks.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, func, select, tuple_
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import (
    CapacityExceeded,
    Conflict,
    DoubleBooking,
    InvalidTransition,
    NotFound,
    OutsideAvailability,
    Unprocessable,
)
from app.core.outbox import emit
from app.models import Assignment, MentoringSession, SessionFeedback, User
from app.schemas.common import decode_cursor, encode_cursor
from app.schemas.sessions import (
    FeedbackPublic,
    MenteeSessionPublic,
    MentorSessionPublic,
    SessionUpdate,
)
from app.services.mentors.availability import is_available, parse_availability
from app.services.mentors.capacity import iso_week_bounds, iso_week_label, mentor_zone
from app.services.sessions.video import VideoProvider, VideoProviderUnavailable
from app.services.workqueue.items import create_work_item

log = structlog.get_logger("app.sessions")

MEETING_TOPIC = "Mentoring session"

OVERLAP_DETAILS = {
    "ex_sessions_mentor_overlap": "The mentor already has a session at that time",
    "ex_sessions_mentee_overlap": "The mentee already has a session at that time",
}


# --- helpers ----------------------------------------------------------------------------------

def _db_error(exc: DBAPIError) -> tuple[str | None, str | None]:
    cause = getattr(exc.orig, "__cause__", None) or exc.orig  # the asyncpg error
    return getattr(cause, "sqlstate", None), getattr(cause, "constraint_name", None)


async def _flush_session_row(session: AsyncSession) -> None:
    """Flush now, so the exclusion constraints judge the row inside this call.

    Two transactions that insert mutually overlapping rows wait for each other in the
    constraint check; Postgres then aborts one with a deadlock (40P01). Only the overlap
    checks can wait here (the mentor row lock serialises everything else), so the victim
    lost a double booking too."""
    try:
        await session.flush()
    except DBAPIError as exc:
        sqlstate, constraint = _db_error(exc)
        if sqlstate in ("23P01", "40P01"):
            raise DoubleBooking(OVERLAP_DETAILS.get(constraint or "")) from exc
        raise


def _check_time(starts_at: datetime, duration_minutes: int, *, settings: Settings,
                now: datetime) -> None:
    field = {"loc": ["body", "starts_at"], "type": "value_error"}
    if starts_at.utcoffset() is None:
        raise Unprocessable("starts_at needs a UTC offset",
                            errors=[{**field, "msg": "starts_at needs a UTC offset"}])
    if starts_at <= now:
        raise Unprocessable("starts_at must be in the future",
                            errors=[{**field, "msg": "starts_at must be in the future"}])
    if starts_at > now + timedelta(days=settings.session_booking_horizon_days):
        msg = f"starts_at must be within {settings.session_booking_horizon_days} days"
        raise Unprocessable(msg, errors=[{**field, "msg": msg}])
    if not 15 <= duration_minutes <= 240:  # the schema checks too; the service is the rule
        raise Unprocessable("duration_minutes must be between 15 and 240")


def _assigned(mentor_id, mentee_id):
    return exists().where(
        Assignment.mentor_id == mentor_id, Assignment.mentee_id == mentee_id,
        Assignment.ended_at.is_(None),
    )


def _not_assigned() -> NotFound:
    return NotFound("The mentee is not assigned to you", code="not_assigned")


async def _require_assigned(session: AsyncSession, *, mentor_id: uuid.UUID,
                            mentee_id: uuid.UUID) -> None:
    if not await session.scalar(select(_assigned(mentor_id, mentee_id))):
        raise _not_assigned()


async def _lock_mentor(session: AsyncSession, mentor_id: uuid.UUID,
                       mentee_id: uuid.UUID) -> User:
    """The mentor's row, locked for this transaction (capacity checks queue up here), once
    the mentee is known to be actively assigned to them.

    Only the lock comes from the first statement: the assignment (and anything counted) is
    read by a later statement, whose snapshot sees what the previous lock holder committed.
    A reassignment holds this row while it ends the assignment and deals with the
    sessions (app/services/programme/), so a booking that waited for it finds the
    assignment ended instead of booking a session the reassignment never saw."""
    mentor = await session.scalar(
        select(User).where(User.id == mentor_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: FK checks go on
        .execution_options(populate_existing=True)
    )
    if mentor is None:
        raise NotFound("Your mentor profile does not exist")
    await _require_assigned(session, mentor_id=mentor_id, mentee_id=mentee_id)
    return mentor


def _check_availability(mentor: User, starts_at: datetime, ends_at: datetime) -> None:
    availability = parse_availability(mentor.mentor_availability)
    if availability is None:
        raise OutsideAvailability("The mentor has no valid availability windows")
    if not is_available(availability, starts_at, ends_at):
        raise OutsideAvailability(
            "The session is not inside one of the mentor's availability windows "
            f"({availability.timezone})")


async def _check_capacity(session: AsyncSession, mentor: User, starts_at: datetime,
                          exclude: uuid.UUID | None = None) -> None:
    """Live sessions starting in the ISO week of `starts_at` (mentor's zone), plus this one,
    must fit `mentor_capacity_weekly`. The caller holds the mentor's row lock."""
    zone = mentor_zone(mentor)
    week_start, week_end = iso_week_bounds(zone, starts_at)
    conditions = [
        MentoringSession.mentor_id == mentor.id,
        MentoringSession.status != "cancelled",
        MentoringSession.starts_at >= week_start,
        MentoringSession.starts_at < week_end,
    ]
    if exclude is not None:
        conditions.append(MentoringSession.id != exclude)
    used = await session.scalar(select(func.count()).where(*conditions))
    if used + 1 > mentor.mentor_capacity_weekly:
        raise CapacityExceeded(
            f"{iso_week_label(zone, starts_at)} is full: "
            f"{used}/{mentor.mentor_capacity_weekly} weekly slots used",
            weekly_slots_used=used, weekly_slots_total=mentor.mentor_capacity_weekly,
        )


def _event_data(row: MentoringSession, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": row.id,
        "mentor_id": row.mentor_id,
        "mentee_id": row.mentee_id,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "duration_minutes": row.duration_minutes,
        "status": row.status,
        "meeting_url": row.meeting_url,
        "sequence": row.sequence,
        **extra,
    }


async def _emit(session: AsyncSession, type: str, row: MentoringSession, **extra: Any) -> None:
    await emit(session, type=type, data=_event_data(row, **extra),
               recipients=[row.mentor_id, row.mentee_id])


def _mentor_public(row: MentoringSession) -> MentorSessionPublic:
    return MentorSessionPublic.model_validate(row)


# --- mentor: book -----------------------------------------------------------------------------

async def book_session(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    video: VideoProvider,
    mentee_id: uuid.UUID,
    starts_at: datetime,
    duration_minutes: int,
    agenda: str | None,
    now: datetime | None = None,
) -> MentorSessionPublic:
    now = now or datetime.now(UTC)
    _check_time(starts_at, duration_minutes, settings=settings, now=now)
    mentor = await _lock_mentor(session, principal.user_id, mentee_id)
    ends_at = starts_at + timedelta(minutes=duration_minutes)
    _check_availability(mentor, starts_at, ends_at)
    await _check_capacity(session, mentor, starts_at)

    row = MentoringSession(
        id=uuid.uuid4(), mentor_id=mentor.id, mentee_id=mentee_id,
        starts_at=starts_at.astimezone(UTC), ends_at=ends_at.astimezone(UTC),
        duration_minutes=duration_minutes, agenda=agenda,
    )

    async def create_meeting() -> None:
        meeting = await video.create_meeting(
            session_id=row.id, starts_at=row.starts_at, duration_minutes=duration_minutes,
            topic=f"{MEETING_TOPIC} with {mentor.name}", agenda=agenda,
        )
        row.meeting_url, row.video_meeting_id = meeting.url, meeting.external_id

    session.add(row)
    if video.remote:
        # A remote meeting is only created once the database accepted the row; a provider
        # failure then rolls the row back.
        await _flush_session_row(session)
        await create_meeting()
        await session.flush()
        await session.refresh(row)  # updated_at moved with the UPDATE
    else:
        # A local link has nothing to undo: take it first and insert the row once.
        await create_meeting()
        await _flush_session_row(session)
    await _emit(session, "session.scheduled", row)
    return _mentor_public(row)


# --- mentor: read -----------------------------------------------------------------------------

async def _own_session(session: AsyncSession, *, principal: Principal, session_id: uuid.UUID,
                       lock: bool = False) -> MentoringSession:
    query = select(MentoringSession).where(
        MentoringSession.id == session_id, MentoringSession.mentor_id == principal.user_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = await session.scalar(query)
    if row is None:
        raise NotFound("No such session")
    return row


async def get_mentor_session(session: AsyncSession, *, principal: Principal,
                             session_id: uuid.UUID) -> MentorSessionPublic:
    return _mentor_public(await _own_session(session, principal=principal,
                                             session_id=session_id))


def _window_and_cursor(query, *, starts_from: datetime | None, starts_to: datetime | None,
                       cursor: str | None):
    if starts_from and starts_to and starts_from > starts_to:
        raise Unprocessable("`from` must not be after `to`")
    if starts_from:
        query = query.where(MentoringSession.starts_at >= starts_from)
    if starts_to:
        query = query.where(MentoringSession.starts_at < starts_to)
    position = decode_cursor(cursor or None)  # `?cursor=` (empty) is the first page
    if position is not None:
        try:
            after = (datetime.fromisoformat(position["s"]), uuid.UUID(position["i"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise Unprocessable("The cursor is not one this service issued",
                                code="invalid_cursor") from exc
        query = query.where(tuple_(MentoringSession.starts_at, MentoringSession.id) > after)
    return query.order_by(MentoringSession.starts_at, MentoringSession.id)


def _next_cursor(rows: list, limit: int, key=lambda row: row) -> str | None:
    if len(rows) <= limit:
        return None
    last = key(rows[limit - 1])
    return encode_cursor({"s": last.starts_at.isoformat(), "i": str(last.id)})


async def list_mentor_sessions(
    session: AsyncSession,
    *,
    principal: Principal,
    starts_from: datetime | None = None,
    starts_to: datetime | None = None,
    status: str | None = None,
    mentee_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MentorSessionPublic], str | None]:
    """The mentor's sessions starting in [from, to), by start time; keyset pagination."""
    query = select(MentoringSession).where(MentoringSession.mentor_id == principal.user_id)
    if status:
        query = query.where(MentoringSession.status == status)
    if mentee_id:
        query = query.where(MentoringSession.mentee_id == mentee_id)
    query = _window_and_cursor(query, starts_from=starts_from, starts_to=starts_to,
                               cursor=cursor)
    rows = list(await session.scalars(query.limit(limit + 1)))
    return [_mentor_public(r) for r in rows[:limit]], _next_cursor(rows, limit)


# --- mentor: change ---------------------------------------------------------------------------

async def update_session(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    video: VideoProvider,
    session_id: uuid.UUID,
    changes: SessionUpdate,
    now: datetime | None = None,
) -> MentorSessionPublic:
    now = now or datetime.now(UTC)
    if changes.is_reschedule:
        return await _reschedule(session, principal=principal, settings=settings, video=video,
                                 session_id=session_id, changes=changes, now=now)
    row = await _own_session(session, principal=principal, session_id=session_id, lock=True)
    await _require_assigned(session, mentor_id=row.mentor_id, mentee_id=row.mentee_id)
    target = changes.status
    if row.status != "scheduled" or target == "scheduled":
        raise InvalidTransition(f"A {row.status} session cannot become {target}",
                                current_status=row.status)

    if target == "cancelled":
        row.status, row.cancel_reason = "cancelled", changes.reason
        row.sequence += 1
        await session.flush()
        await _emit(session, "session.cancelled", row, reason=changes.reason,
                    cancelled_by=principal.user_id)
        try:  # the slot is free either way; a leftover remote meeting is harmless
            await video.delete_meeting(external_id=row.video_meeting_id)
        except VideoProviderUnavailable as exc:
            log.warning("video_meeting_not_deleted", session_id=str(row.id), error=exc.detail)
    else:  # completed | no_show
        if now < row.starts_at:
            raise InvalidTransition(f"A session cannot be marked {target} before it starts",
                                    current_status=row.status)
        row.status, row.mentor_notes = target, changes.mentor_notes
        await session.flush()
        await _emit(session, "session.completed", row)
        title = ("Follow up on the session" if target == "completed"
                 else "Reach out after the missed session")
        await create_work_item(
            session, settings=settings, kind="session_followup", mentee_id=row.mentee_id,
            source_key=f"session.completed:{row.id}", title=title,
            details={"session_id": str(row.id), "status": target,
                     "starts_at": row.starts_at.isoformat()},
            created_at=now,
        )
    await session.refresh(row)
    return _mentor_public(row)


async def _reschedule(session: AsyncSession, *, principal: Principal, settings: Settings,
                      video: VideoProvider, session_id: uuid.UUID, changes: SessionUpdate,
                      now: datetime) -> MentorSessionPublic:
    # A session's mentee never changes: read it unlocked, then lock mentor, then session.
    unlocked = await _own_session(session, principal=principal, session_id=session_id)
    mentor = await _lock_mentor(session, principal.user_id, unlocked.mentee_id)
    row = await _own_session(session, principal=principal, session_id=session_id, lock=True)
    if row.status != "scheduled":
        raise InvalidTransition(f"A {row.status} session cannot be rescheduled",
                                current_status=row.status)
    starts_at = (changes.starts_at or row.starts_at).astimezone(UTC)
    duration = changes.duration_minutes or row.duration_minutes
    if (starts_at, duration) == (row.starts_at, row.duration_minutes):
        return _mentor_public(row)  # nothing moves: no new sequence, no event

    _check_time(starts_at, duration, settings=settings, now=now)
    ends_at = starts_at + timedelta(minutes=duration)
    _check_availability(mentor, starts_at, ends_at)
    await _check_capacity(session, mentor, starts_at, exclude=row.id)

    previous = {"previous_starts_at": row.starts_at,
                "previous_duration_minutes": row.duration_minutes}
    row.starts_at, row.ends_at, row.duration_minutes = starts_at, ends_at, duration
    row.sequence += 1
    await _flush_session_row(session)
    await video.update_meeting(external_id=row.video_meeting_id, starts_at=starts_at,
                               duration_minutes=duration)
    await _emit(session, "session.rescheduled", row, **previous)
    await session.refresh(row)
    return _mentor_public(row)


# --- mentee -----------------------------------------------------------------------------------

def _feedback_given():
    return exists().where(SessionFeedback.session_id == MentoringSession.id).label(
        "feedback_given")


def _mentee_public(row: MentoringSession, feedback_given: bool) -> MenteeSessionPublic:
    public = MenteeSessionPublic.model_validate(row)
    public.feedback_given = bool(feedback_given)
    return public


async def list_mentee_sessions(
    session: AsyncSession,
    *,
    principal: Principal,
    starts_from: datetime | None = None,
    starts_to: datetime | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MenteeSessionPublic], str | None]:
    """The mentee's own sessions (with any mentor, past ones included), by start time."""
    query = select(MentoringSession, _feedback_given()).where(
        MentoringSession.mentee_id == principal.user_id)
    if status:
        query = query.where(MentoringSession.status == status)
    query = _window_and_cursor(query, starts_from=starts_from, starts_to=starts_to,
                               cursor=cursor)
    rows = (await session.execute(query.limit(limit + 1))).all()
    items = [_mentee_public(r.MentoringSession, r.feedback_given) for r in rows[:limit]]
    return items, _next_cursor(rows, limit, key=lambda r: r.MentoringSession)


async def upcoming_sessions(
    session: AsyncSession, *, mentee_id: uuid.UUID, limit: int = 5,
    now: datetime | None = None,
) -> list[MenteeSessionPublic]:
    """The mentee's scheduled sessions that have not ended yet, soonest first (for
    `GET /api/v1/mentee/me`)."""
    now = now or datetime.now(UTC)
    rows = await session.scalars(
        select(MentoringSession)
        .where(MentoringSession.mentee_id == mentee_id,
               MentoringSession.status == "scheduled",
               MentoringSession.ends_at > now)
        .order_by(MentoringSession.starts_at, MentoringSession.id)
        .limit(limit)
    )
    return [_mentee_public(row, False) for row in rows]


async def give_feedback(
    session: AsyncSession,
    *,
    principal: Principal,
    session_id: uuid.UUID,
    rating: int,
    comment: str | None,
) -> FeedbackPublic:
    """Once per completed session, by its mentee. The unique constraint on `session_id`
    settles a race between two submissions."""
    row = await session.scalar(select(MentoringSession).where(
        MentoringSession.id == session_id, MentoringSession.mentee_id == principal.user_id))
    if row is None:
        raise NotFound("No such session")
    if row.status != "completed":
        raise Conflict(f"Feedback is for completed sessions; this one is {row.status}",
                       code="session_not_completed")
    already = await session.scalar(select(exists().where(
        SessionFeedback.session_id == session_id)))
    if already:
        raise Conflict("Feedback was already given for this session", code="feedback_exists")
    feedback = SessionFeedback(session_id=row.id, mentor_id=row.mentor_id,
                               mentee_id=row.mentee_id, rating=rating, comment=comment)
    session.add(feedback)
    try:
        await session.flush()
    except IntegrityError as exc:
        if _db_error(exc)[0] == "23505":
            raise Conflict("Feedback was already given for this session",
                           code="feedback_exists") from exc
        raise
    return FeedbackPublic.model_validate(feedback)
