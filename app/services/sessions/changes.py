"""The PATCH of a session by its mentor (reschedule, cancel, complete) and by its mentee
(reschedule, cancel: not later than `SESSION_CHANGE_NOTICE_HOURS` before the start).

A completed (or no-show) session closes the `session_followup` item that the follow-up
sweep opened when the session was left `scheduled` past its end, or else opens one for
the mentor (source_key `session.completed:<id>`, created once): the follow-up note or the
reaching out after a missed session is exactly what the work queue tracks.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import InvalidTransition, Unprocessable
from app.models import MentoringSession
from app.schemas.sessions import (
    MenteeSessionPublic,
    MenteeSessionUpdate,
    MentorSessionPublic,
    SessionUpdate,
)
from app.services.sessions.booking import (
    TooLateToChange,
    cancel_session,
    emit_session_event,
    lock_session_row,
    reschedule_session,
)
from app.services.sessions.followups import close_or_open_followup
from app.services.sessions.queries import mentor_public, own_session
from app.services.sessions.scheduling import NoMentor, load_rules, mentee_pair, not_assigned
from app.services.sessions.video import VideoProvider


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
    mentor_id = await mentee_pair(session, principal=principal)
    if row.mentor_id != mentor_id:
        raise NoMentor("This session's mentor is no longer your mentor")
    notice = timedelta(hours=settings.session_change_notice_hours)

    def in_time(locked: MentoringSession) -> None:
        if now > locked.starts_at - notice:
            raise TooLateToChange(
                f"Sessions change at least {settings.session_change_notice_hours} hours "
                "before they start; ask your mentor")

    if changes.is_reschedule:
        row = await reschedule_session(
            session, actor=principal, settings=settings, video=video, row=row,
            starts_at=changes.starts_at, duration_minutes=changes.duration_minutes,
            enforce_notice=True, now=now, check=in_time)
    else:
        if changes.status != "cancelled":  # the schema allows nothing else
            raise Unprocessable("A mentee may only cancel")
        row = await lock_session_row(session, row.id)
        if row.status == "scheduled":
            in_time(row)
        await cancel_session(session, actor=principal, video=video, row=row,
                             reason=changes.reason)
        await session.refresh(row)
    return MenteeSessionPublic.model_validate(row)
