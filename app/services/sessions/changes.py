"""Changing a session: reschedule, cancel, complete; the PATCH of a session by its mentor
(reschedule, cancel, complete) and by its mentee (reschedule, cancel: not later than
`SESSION_CHANGE_NOTICE_HOURS` before the start).

Lock order (app/services/programme/__init__.py): the mentor's row, then the session's row.
A reschedule takes both (`lock_with_mentor`: the mentor locked is the session's mentor once
the session is read again under that lock, even when a transfer moved it meanwhile), a
status change the session's row only, so they cannot deadlock each other nor with a
reassignment. Every change writes its outbound event, to the mentor and the mentee, in the
same transaction.

A completed (or no-show) session closes the `session_followup` item that the follow-up
sweep opened when the session was left `scheduled` past its end, or else opens one for
the mentor (source_key `session.completed:<id>`, created once): the follow-up note or the
reaching out after a missed session is exactly what the work queue tracks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.dberrors import db_error_info
from app.core.errors import Conflict, DoubleBooking, InvalidTransition, NotFound, Unprocessable
from app.models import MentoringSession
from app.schemas.sessions import (
    MenteeSessionPublic,
    MenteeSessionUpdate,
    MentorSessionPublic,
    SessionUpdate,
)
from app.services.sessions.booking import (
    OVERLAP_DETAILS,
    TooLateToChange,
    check_rules,
    emit_session_event,
)
from app.services.sessions.followups import close_or_open_followup
from app.services.sessions.queries import mentor_public, own_session
from app.services.sessions.scheduling import (
    NoMentor,
    load_rules,
    lock_mentor,
    mentee_pair,
    not_assigned,
)
from app.services.sessions.video import VideoProvider, VideoProviderUnavailable

log = structlog.get_logger("app.sessions")

# As app/services/relationships/locks.py: each retry means a transfer of this session
# committed, so retries make progress; the bound only stops a pathological storm.
ATTEMPTS = 50


async def _flush_session_row(session: AsyncSession) -> None:
    """Flush now, so the exclusion constraints judge the row inside this call.

    Two transactions that insert mutually overlapping rows wait for each other in the
    constraint check; Postgres then aborts one with a deadlock (40P01). Only the overlap
    checks can wait here (the mentor row lock serialises everything else), so the victim
    lost a double booking too."""
    try:
        await session.flush()
    except DBAPIError as exc:
        sqlstate, constraint = db_error_info(exc)
        if sqlstate in ("23P01", "40P01"):
            raise DoubleBooking(OVERLAP_DETAILS.get(constraint or "")) from exc
        raise


async def lock_session_row(session: AsyncSession, session_id: uuid.UUID) -> MentoringSession:
    """The session's row, locked and freshly read; 404 when the caller no longer sees it (a
    transfer gave it to another mentor since the caller's unlocked read)."""
    row = await session.scalar(
        select(MentoringSession).where(MentoringSession.id == session_id)
        .with_for_update().execution_options(populate_existing=True))
    if row is None:
        raise NotFound("No such session")
    return row


async def lock_with_mentor(session: AsyncSession, *, actor: Principal,
                           row: MentoringSession) -> MentoringSession:
    """`row` (read unlocked by the caller) locked in the lock order: its mentor's row first
    (`lock_mentor`, which also checks that the caller may schedule the pair), then the
    session's row, read again. A transfer (app/services/sessions/handover.py) may have
    given the session to another mentor between the caller's read and the lock: the mentor
    locked is then not the session's, so the savepoint is rolled back (releasing that lock,
    never holding two mentors' rows out of id order) and the session's new mentor is locked
    instead. Once the session is read under its own mentor's lock it stays theirs until
    commit: a transfer locks the old mentor's row before it reads their sessions."""
    session_id, mentor_id, mentee_id = row.id, row.mentor_id, row.mentee_id
    for _ in range(ATTEMPTS):
        savepoint = await session.begin_nested()
        allowed = await lock_mentor(session, mentor_id=mentor_id, mentee_id=mentee_id)
        locked = await lock_session_row(session, session_id)  # 404: no longer theirs
        current = locked.mentor_id
        if current == mentor_id:
            await savepoint.commit()  # RELEASE SAVEPOINT keeps the locks
            if not allowed:
                if actor.role == "mentee":
                    raise NoMentor("This session's mentor is no longer your mentor")
                raise not_assigned()
            return locked
        await savepoint.rollback()  # releases the old mentor's row lock
        mentor_id = current
    raise Conflict("The session kept moving between mentors; retry", code="concurrent_change")


async def reschedule_session(
    session: AsyncSession, *, actor: Principal, settings: Settings, video: VideoProvider,
    row: MentoringSession, starts_at: datetime | None, duration_minutes: int | None,
    enforce_notice: bool, now: datetime,
    check: Callable[[MentoringSession], None] | None = None,
) -> MentoringSession:
    """Move `row` (read unlocked by the caller) under every booking rule, with its mentor's
    row and its own locked (`lock_with_mentor`); `session.rescheduled`.
    `check(locked_row)` adds the caller's own conditions."""
    row = await lock_with_mentor(session, actor=actor, row=row)
    if row.status != "scheduled":
        raise InvalidTransition(f"A {row.status} session cannot be rescheduled",
                                current_status=row.status)
    if check is not None:
        check(row)
    new_start = (starts_at or row.starts_at).astimezone(UTC)
    duration = duration_minutes or row.duration_minutes
    if (new_start, duration) == (row.starts_at, row.duration_minutes):
        return row  # nothing moves: no new sequence, no event
    await check_rules(session, actor=actor, mentor_id=row.mentor_id, mentee_id=row.mentee_id,
                      starts_at=new_start, duration_minutes=duration, settings=settings,
                      now=now, enforce_notice=enforce_notice, exclude=row.id)
    previous = {"previous_starts_at": row.starts_at,
                "previous_duration_minutes": row.duration_minutes}
    row.starts_at, row.duration_minutes = new_start, duration
    row.ends_at = new_start + timedelta(minutes=duration)
    row.sequence += 1
    await _flush_session_row(session)
    await video.update_meeting(external_id=row.video_meeting_id, starts_at=new_start,
                               duration_minutes=duration)
    await emit_session_event(session, "session.rescheduled", row, actor, **previous)
    await session.refresh(row)
    return row


async def cancel_session(session: AsyncSession, *, actor: Principal | None,
                         video: VideoProvider, row: MentoringSession,
                         reason: str | None) -> MentoringSession:
    """Cancel a locked, scheduled `row`; `session.cancelled` to both people. Other domains
    (reassignment, deactivation) call this with their own actor (None: the system)."""
    if row.status != "scheduled":
        raise InvalidTransition(f"A {row.status} session cannot become cancelled",
                                current_status=row.status)
    row.status, row.cancel_reason = "cancelled", reason
    row.sequence += 1
    await session.flush()
    await emit_session_event(session, "session.cancelled", row, actor, reason=reason,
                             cancelled_by=actor.user_id if actor else None)
    try:  # the slot is free either way; a leftover remote meeting is harmless
        await video.delete_meeting(external_id=row.video_meeting_id)
    except VideoProviderUnavailable as exc:
        log.warning("video_meeting_not_deleted", session_id=str(row.id), error=exc.detail)
    return row


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
    """The mentor's PATCH: reschedule, cancel or complete one of their sessions."""
    now = now or datetime.now(UTC)
    row = await own_session(session, principal=principal, session_id=session_id)
    if changes.is_reschedule:
        row = await reschedule_session(
            session, actor=principal, settings=settings, video=video, row=row,
            starts_at=changes.starts_at, duration_minutes=changes.duration_minutes,
            enforce_notice=False, now=now)
        return mentor_public(row)
    row = await lock_session_row(session, row.id)
    # A session of a mentee who is no longer theirs is not the mentor's to change.
    if await load_rules(session, mentor_id=row.mentor_id, mentee_id=row.mentee_id) is None:
        raise not_assigned()
    if changes.status == "cancelled":
        await cancel_session(session, actor=principal, video=video, row=row,
                             reason=changes.reason)
    else:
        await _complete(session, principal=principal, settings=settings, row=row,
                        target=changes.status or "", notes=changes.mentor_notes, now=now)
    await session.refresh(row)
    return mentor_public(row)


async def _complete(session: AsyncSession, *, principal: Principal, settings: Settings,
                    row: MentoringSession, target: str, notes: str | None,
                    now: datetime) -> None:
    if row.status != "scheduled" or target not in ("completed", "no_show"):
        raise InvalidTransition(f"A {row.status} session cannot become {target}",
                                current_status=row.status)
    if now < row.starts_at:
        raise InvalidTransition(f"A session cannot be marked {target} before it starts",
                                current_status=row.status)
    row.status, row.mentor_notes = target, notes
    await session.flush()
    await emit_session_event(session, "session.completed", row, principal)
    await close_or_open_followup(session, settings=settings, row=row, actor=principal,
                                 now=now)


async def update_mentee_session(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    video: VideoProvider,
    session_id: uuid.UUID,
    changes: MenteeSessionUpdate,
    now: datetime | None = None,
) -> MenteeSessionPublic:
    """The mentee's PATCH: reschedule or cancel a session with their current mentor, no
    later than `session_change_notice_hours` before its (current) start."""
    now = now or datetime.now(UTC)
    row = await own_session(session, principal=principal, session_id=session_id)
    notice = timedelta(hours=settings.session_change_notice_hours)

    def in_time(locked: MentoringSession) -> None:
        if now > locked.starts_at - notice:
            raise TooLateToChange(
                f"Sessions change at least {settings.session_change_notice_hours} hours "
                "before they start; ask your mentor")

    if changes.is_reschedule:  # 409 `no_mentor` from the lock: not their mentor's session
        row = await reschedule_session(
            session, actor=principal, settings=settings, video=video, row=row,
            starts_at=changes.starts_at, duration_minutes=changes.duration_minutes,
            enforce_notice=True, now=now, check=in_time)
    else:
        if changes.status != "cancelled":  # the schema allows nothing else
            raise Unprocessable("A mentee may only cancel")
        row = await lock_session_row(session, row.id)
        # Read after the lock: a transfer moves the session (under this lock) and the
        # assignment in one transaction, so both reads agree.
        if row.mentor_id != await mentee_pair(session, principal=principal):
            raise NoMentor("This session's mentor is no longer your mentor")
        if row.status == "scheduled":
            in_time(row)
        await cancel_session(session, actor=principal, video=video, row=row,
                             reason=changes.reason)
        await session.refresh(row)
    return MenteeSessionPublic.model_validate(row)
