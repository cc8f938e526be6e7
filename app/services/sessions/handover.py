"""What happens to sessions when a relationship changes: cancel them, or hand them over.

Called by the programme orchestration (app/services/programme/) after it took the users'
and the assignments' locks; these functions lock the session rows last (the lock order is
written down in app/services/programme/__init__.py).

"Future live sessions" are `scheduled` sessions that have not started yet: one that is
under way or over keeps its mentor (its outcome is still theirs to record).

A transfer keeps each session's time and moves it to the new mentor under every booking
rule of the new mentor except minimum notice (the mentee did not ask for a change). The
judge is the slot engine itself (app/services/sessions/slots.py `violation`, the function
every booking route calls) over the new mentor's rules and busy times as the booking routes
load them (app/services/sessions/scheduling.py): availability windows in the new mentor's
zone, time off, weekly capacity per ISO week in that zone, the new mentor's buffer and live
sessions, the mentee's other sessions. The sessions moving together count as the new
mentor's for each other (capacity, overlap, buffer). Every conflict is reported at once;
the exclusion constraints stay the final judge of overlaps. All or nothing: if any one
cannot move, 409 `transfer_conflict` lists each conflict and the caller's transaction rolls
back. A moved session gets a new meeting link from the new mentor's video room and a new
iCalendar sequence.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.dberrors import sqlstate_of
from app.core.errors import Conflict
from app.core.outbox import emit
from app.models import MentoringSession, User
from app.services.sessions.booking import MEETING_TOPIC, _event_data
from app.services.sessions.scheduling import load_inputs
from app.services.sessions.slots import Busy, count_weeks, violation
from app.services.sessions.video import VideoProvider, VideoProviderUnavailable

log = structlog.get_logger("app.sessions")


class TransferConflict(Conflict):
    code, title = "transfer_conflict", "The sessions cannot all move to the new mentor"


async def future_sessions(
    session: AsyncSession, *, now: datetime, mentee_id: uuid.UUID | None = None,
    mentor_id: uuid.UUID | None = None, lock: bool = True,
) -> list[MentoringSession]:
    """Scheduled sessions starting after `now` of the mentee and/or the mentor, by start,
    locked (the caller already holds the users' and assignments' locks)."""
    conditions = [MentoringSession.status == "scheduled", MentoringSession.starts_at > now]
    if mentee_id is not None:
        conditions.append(MentoringSession.mentee_id == mentee_id)
    if mentor_id is not None:
        conditions.append(MentoringSession.mentor_id == mentor_id)
    query = (select(MentoringSession).where(*conditions)
             .order_by(MentoringSession.starts_at, MentoringSession.id))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(await session.scalars(query))


async def cancel_sessions(
    session: AsyncSession, rows: Sequence[MentoringSession], *, reason: str,
    cancelled_by: uuid.UUID | None, video: VideoProvider,
) -> list[uuid.UUID]:
    """Cancel each session (`session.cancelled` to its mentor and mentee, with `reason`)."""
    for row in rows:
        row.status, row.cancel_reason = "cancelled", reason
        row.sequence += 1
    await session.flush()
    for row in rows:
        await emit(session, type="session.cancelled",
                   data=_event_data(row, reason=reason, cancelled_by=cancelled_by),
                   recipients=[row.mentor_id, row.mentee_id])
    for row in rows:
        try:  # the slot is free either way; a leftover remote meeting is harmless
            await video.delete_meeting(external_id=row.video_meeting_id)
        except VideoProviderUnavailable as exc:
            log.warning("video_meeting_not_deleted", session_id=str(row.id), error=exc.detail)
    return [row.id for row in rows]


def _conflict(row: MentoringSession, reason: str, detail: str) -> dict[str, str]:
    return {"session_id": str(row.id), "starts_at": row.starts_at.isoformat(),
            "reason": reason, "detail": detail}


async def transfer_conflicts(
    session: AsyncSession, rows: Sequence[MentoringSession], *, to_mentor: User,
    now: datetime,
) -> list[dict[str, str]]:
    """Every reason any of `rows` (one mentee's) cannot move to `to_mentor` (empty: all
    can). The caller holds the new mentor's row lock (the lock every booking of theirs
    takes first), so what is read here stays true until commit."""
    if not rows:
        return []
    mentee_id = rows[0].mentee_id
    loaded = await load_inputs(
        session, mentor_id=to_mentor.id, mentee_id=mentee_id,
        lo=min(row.starts_at for row in rows),
        hi=max(row.starts_at for row in rows) + timedelta(microseconds=1))
    if loaded is None:  # only staff and the system reassign; anyone else reads no rules
        return [_conflict(row, "not_allowed", "The new mentor's rules are not readable")
                for row in rows]
    rules, busy = loaded
    moving = {(row.starts_at, row.ends_at) for row in rows}
    # The moving sessions are still the old mentor's, so they come back as the mentee's
    # busy times; one live session of the mentee per interval (exclusion constraint), so
    # equal intervals are exactly them.
    mentee_busy = [i for i in busy.mentee if i not in moving]
    conflicts: list[dict[str, str]] = []
    for row in rows:
        others = [(r.starts_at, r.ends_at) for r in rows if r.id != row.id]
        mentor_busy = [*busy.mentor, *others]
        error = violation(
            rules, Busy(mentor=mentor_busy, mentee=mentee_busy, time_off=busy.time_off,
                        week_counts=count_weeks(rules.zone, mentor_busy)),
            starts_at=row.starts_at, duration_minutes=row.duration_minutes, now=now,
            enforce_notice=False)
        if error is not None:
            conflicts.append(_conflict(row, error.code, error.detail))
    return conflicts


async def transfer_sessions(
    session: AsyncSession, rows: Sequence[MentoringSession], *, to_mentor: User,
    video: VideoProvider, changed_by: uuid.UUID | None, now: datetime,
) -> list[uuid.UUID]:
    """Move every session in `rows` to `to_mentor` (same time), or none: 409
    `transfer_conflict` with `conflicts`. `session.rescheduled` goes to the old mentor, the
    new mentor and the mentee."""
    conflicts = await transfer_conflicts(session, rows, to_mentor=to_mentor, now=now)
    if conflicts:
        raise TransferConflict(
            f"{len({c['session_id'] for c in conflicts})} of {len(rows)} sessions cannot "
            "move to the new mentor; nothing changed", conflicts=conflicts)
    previous: dict[uuid.UUID, tuple[uuid.UUID, str | None, str | None]] = {}
    for row in rows:
        previous[row.id] = (row.mentor_id, row.meeting_url, row.video_meeting_id)
        row.mentor_id = to_mentor.id
        row.sequence += 1
    try:
        await session.flush()
    except DBAPIError as exc:  # the exclusion constraint saw an overlap the check missed
        if sqlstate_of(exc) in ("23P01", "40P01"):
            raise TransferConflict("A session overlaps one of the new mentor's; nothing "
                                   "changed", conflicts=[]) from exc
        raise
    # New links only once the database accepted the move (a remote provider's meeting is
    # not created for a transfer that is refused; a provider failure rolls it all back).
    for row in rows:
        meeting = await video.create_meeting(
            session_id=row.id, starts_at=row.starts_at, duration_minutes=row.duration_minutes,
            topic=f"{MEETING_TOPIC} with {to_mentor.name}", agenda=row.agenda)
        row.meeting_url, row.video_meeting_id = meeting.url, meeting.external_id
    await session.flush()
    for row in rows:
        old_mentor, old_url, old_meeting = previous[row.id]
        await emit(session, type="session.rescheduled",
                   data=_event_data(row, previous_mentor_id=old_mentor,
                                    previous_meeting_url=old_url, reason="reassigned",
                                    changed_by=changed_by),
                   recipients=[old_mentor, row.mentor_id, row.mentee_id])
        try:
            await video.delete_meeting(external_id=old_meeting)
        except VideoProviderUnavailable as exc:
            log.warning("video_meeting_not_deleted", session_id=str(row.id), error=exc.detail)
    return [row.id for row in rows]
