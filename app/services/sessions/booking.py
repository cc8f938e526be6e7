"""Booking sessions, whoever acts: the mentor, the mentee (with their current mentor) or,
through the same functions, other domains (reassignment). Changes (reschedule, cancel,
complete) are in app/services/sessions/changes.py, under the same rules.

Who decides what:
- every booking rule: the slot engine (app/services/sessions/slots.py `violation`), the
  same code that lists the slots, over the rules and busy times read after the mentor's
  row lock was granted (app/services/sessions/scheduling.py; a booking takes the lock and
  reads them in one statement, `lock_inputs`), so concurrent bookings of one mentor, by
  anyone, are judged one after another: weekly capacity, buffers and time off hold.
- overlaps: also the database. Two exclusion constraints refuse a live session that
  overlaps another of the same mentor or mentee; the service flushes so a violation
  (23P01, e.g. the mentee booked with another mentor meanwhile) becomes 409 `double_booking`.
- the video link: a remote meeting (Zoom) is created once the database accepted the row,
  inside the same transaction, so a provider failure rolls the booking back; a local
  link (Jitsi room) has nothing to undo and is made before the insert.
- a new booking is two round trips after the request's own: the lock with the inputs,
  then the INSERT and its outbox event in one statement (the reminders are armed by the
  trigger of migration 0015, the audit row by 0019's, in that same statement).

Lock order is always mentor row, then session row (app/services/programme/__init__.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import DateTime, Row, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.dberrors import db_error_info
from app.core.errors import (
    Conflict,
    DomainError,
    DoubleBooking,
    Unprocessable,
)
from app.core.outbox import DIRECTOR_EVENTS, OutboundEvent, emit, outbox_rows
from app.models import MentoringSession
from app.schemas.sessions import MenteeSessionPublic, MentorSessionPublic
from app.services.sessions.scheduling import (
    NoMentor,
    load_inputs,
    lock_inputs,
    not_assigned,
)
from app.services.sessions.slots import MentorRules, violation
from app.services.sessions.video import VideoProvider

MEETING_TOPIC = "Mentoring session"

OVERLAP_DETAILS = {
    "ex_sessions_mentor_overlap": "The mentor already has a session at that time",
    "ex_sessions_mentee_overlap": "The mentee already has a session at that time",
}


class TooLateToChange(Conflict):
    code, title = "too_late_to_change", "Too late to change this session"


# --- helpers ----------------------------------------------------------------------------------

def check_time(starts_at: datetime, duration_minutes: int, *, settings: Settings,
               now: datetime) -> None:
    """The instant itself: with an offset, in the future, within the booking horizon."""
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


def _missing_for(actor: Principal) -> Callable[[], DomainError]:
    if actor.role == "mentee":
        return lambda: NoMentor("You have no mentor to book with")
    return not_assigned


async def check_rules(session: AsyncSession, *, actor: Principal, mentor_id: uuid.UUID,
                      mentee_id: uuid.UUID, starts_at: datetime, duration_minutes: int,
                      settings: Settings, now: datetime, enforce_notice: bool,
                      exclude: uuid.UUID | None = None) -> MentorRules:
    """The mentor's rules, once [starts_at, +duration) is known to book; else the 409 (or
    422) the booking gets. Call it with the mentor's row locked (`lock_pair`): the rules
    and the busy times are read in one statement after the lock."""
    check_time(starts_at, duration_minutes, settings=settings, now=now)
    loaded = await load_inputs(session, mentor_id=mentor_id, mentee_id=mentee_id,
                               lo=starts_at,
                               hi=starts_at + timedelta(minutes=duration_minutes),
                               exclude=exclude)
    if loaded is None:  # the pair ended between the lock and this read: not possible
        raise _missing_for(actor)()  # under the lock, but never a 500 if it were
    rules, busy = loaded
    error = violation(rules, busy, starts_at=starts_at, duration_minutes=duration_minutes,
                      now=now, enforce_notice=enforce_notice)
    if error is not None:
        raise error
    return rules


def _event_data(row: Any, actor: Principal | None = None,
                **extra: Any) -> dict[str, Any]:
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
        "changed_by": actor.user_id if actor else None,
        "changed_by_role": actor.role if actor else "system",
        **extra,
    }


async def emit_session_event(session: AsyncSession, type: str, row: MentoringSession,
                             actor: Principal | None, **extra: Any) -> None:
    await emit(session, type=type, data=_event_data(row, actor, **extra),
               recipients=[row.mentor_id, row.mentee_id])


# --- book -------------------------------------------------------------------------------------

_SESSION_COLUMNS = ("id, mentor_id, mentee_id, starts_at, ends_at, duration_minutes, status, "
                    "meeting_url, video_meeting_id, agenda, mentor_notes, cancel_reason, "
                    "sequence, created_at, updated_at")
_INSERT_SESSION = f"""
    insert into sessions (id, mentor_id, mentee_id, starts_at, ends_at, duration_minutes,
                          status, meeting_url, video_meeting_id, agenda, sequence)
    values (:id, :mentor_id, :mentee_id, :starts_at, :ends_at, :duration_minutes,
            'scheduled', :meeting_url, :video_meeting_id, :agenda, 0)
    returning {_SESSION_COLUMNS}"""
_SET_MEETING = f"""
    update sessions set meeting_url = :meeting_url, video_meeting_id = :video_meeting_id,
                        updated_at = now()
     where id = :id
    returning {_SESSION_COLUMNS}"""
# The row's statement and its outbound event (`outbox_emit`, what `app.core.outbox.emit`
# calls) in one round trip: the event is written once, for the one row the statement wrote.
_WITH_EVENT = """
    with s as ({statement})
    select s.*, outbox_emit(:event_id, :event_type, :occurred_at, :data, :priority,
                            :recipients) is not null as emitted
      from s"""
_EVENT_TYPES = {"data": JSONB, "recipients": ARRAY(PgUUID(as_uuid=True)),
                "occurred_at": DateTime(timezone=True)}
_INSERT_WITH_EVENT = text(_WITH_EVENT.format(statement=_INSERT_SESSION)).bindparams(
    *(bindparam(name, type_=type_) for name, type_ in _EVENT_TYPES.items()))
_SET_MEETING_WITH_EVENT = text(_WITH_EVENT.format(statement=_SET_MEETING)).bindparams(
    *(bindparam(name, type_=type_) for name, type_ in _EVENT_TYPES.items()))


def _event_parameters(type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`outbox_emit`'s arguments as `app.core.outbox.emit` builds them (session events go
    to the two people only: none is a director event)."""
    assert type not in DIRECTOR_EVENTS
    (row,) = outbox_rows([OutboundEvent(type, data, (data["mentor_id"], data["mentee_id"]))])
    return {"event_id": row["id"], "event_type": row["type"],
            "occurred_at": row["occurred_at"], "data": row["data"],
            "priority": row["priority"], "recipients": row["recipients"]}


async def _write_row(session: AsyncSession, statement, values: dict[str, Any]) -> Row:
    """Insert the session row (RETURNING it): the exclusion constraints judge it inside
    this call, a violation or deadlock is 409 `double_booking` (as `_flush_session_row`)."""
    try:
        return (await session.execute(statement, values)).one()
    except DBAPIError as exc:
        sqlstate, constraint = db_error_info(exc)
        if sqlstate in ("23P01", "40P01"):
            raise DoubleBooking(OVERLAP_DETAILS.get(constraint or "")) from exc
        raise


async def create_session(
    session: AsyncSession,
    *,
    actor: Principal,
    settings: Settings,
    video: VideoProvider,
    mentor_id: uuid.UUID | None,
    mentee_id: uuid.UUID,
    starts_at: datetime,
    duration_minutes: int,
    agenda: str | None,
    enforce_notice: bool,
    now: datetime,
) -> Row:
    """Book a session for an active pair under every booking rule; `session.scheduled`.
    `mentor_id=None`: the mentee's current mentor. Returns the new row (its columns as
    attributes).

    Two round trips in all: the mentor's lock with the rules and busy times
    (`lock_inputs`), then the INSERT with its event. A local video room is made before
    the INSERT; a remote meeting once the INSERT was accepted (then an UPDATE carries the
    link and the event)."""
    # The order of the answers: a mentee without a mentor hears 409 `no_mentor` before
    # anything about the time; a mentor hears about the time before `not_assigned`. (An
    # instant without an offset, which the schemas refuse, never reaches the database.)
    if mentor_id is not None or starts_at.utcoffset() is None:
        check_time(starts_at, duration_minutes, settings=settings, now=now)
    ends_at = starts_at + timedelta(minutes=duration_minutes)
    loaded = await lock_inputs(session, mentor_id=mentor_id, mentee_id=mentee_id,
                               lo=starts_at, hi=ends_at)
    if loaded is None:  # not an active pair of the caller's (or not theirs to book)
        raise _missing_for(actor)()
    if mentor_id is None:
        check_time(starts_at, duration_minutes, settings=settings, now=now)
    rules, busy = loaded
    error = violation(rules, busy, starts_at=starts_at, duration_minutes=duration_minutes,
                      now=now, enforce_notice=enforce_notice)
    if error is not None:
        raise error
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "mentor_id": rules.mentor_id, "mentee_id": mentee_id,
        "starts_at": starts_at.astimezone(UTC), "ends_at": ends_at.astimezone(UTC),
        "duration_minutes": duration_minutes, "agenda": agenda,
        "meeting_url": None, "video_meeting_id": None,
    }

    async def create_meeting() -> None:
        meeting = await video.create_meeting(
            session_id=values["id"], starts_at=values["starts_at"],
            duration_minutes=duration_minutes,
            topic=f"{MEETING_TOPIC} with {rules.name}", agenda=agenda)
        values["meeting_url"], values["video_meeting_id"] = meeting.url, meeting.external_id

    def event() -> dict[str, Any]:
        return _event_parameters("session.scheduled", _event_data(SimpleNamespace(
            **values, status="scheduled", sequence=0), actor))

    if video.remote:
        await _write_row(session, text(_INSERT_SESSION), values)
        await create_meeting()
        return (await session.execute(_SET_MEETING_WITH_EVENT, {**values, **event()})).one()
    await create_meeting()
    return await _write_row(session, _INSERT_WITH_EVENT, {**values, **event()})


async def book_session(
    session: AsyncSession, *, principal: Principal, settings: Settings, video: VideoProvider,
    mentee_id: uuid.UUID, starts_at: datetime, duration_minutes: int, agenda: str | None,
    now: datetime | None = None,
) -> MentorSessionPublic:
    """The mentor books with one of their mentees (minimum notice does not bind them)."""
    row = await create_session(
        session, actor=principal, settings=settings, video=video,
        mentor_id=principal.user_id, mentee_id=mentee_id, starts_at=starts_at,
        duration_minutes=duration_minutes, agenda=agenda, enforce_notice=False,
        now=now or datetime.now(UTC))
    return MentorSessionPublic.model_validate(row)


async def book_mentee_session(
    session: AsyncSession, *, principal: Principal, settings: Settings, video: VideoProvider,
    starts_at: datetime, duration_minutes: int, agenda: str | None,
    now: datetime | None = None,
) -> MenteeSessionPublic:
    """The mentee books with their current mentor (found with the lock: 409 `no_mentor`
    without one), minimum notice included."""
    row = await create_session(
        session, actor=principal, settings=settings, video=video, mentor_id=None,
        mentee_id=principal.user_id, starts_at=starts_at, duration_minutes=duration_minutes,
        agenda=agenda, enforce_notice=True, now=now or datetime.now(UTC))
    return MenteeSessionPublic.model_validate(row)
