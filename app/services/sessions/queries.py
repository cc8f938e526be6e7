"""Reading sessions (mentor's and mentee's lists, one session, the mentee's upcoming ones)
and the mentee's feedback on a completed session."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import exists, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.dberrors import sqlstate_of
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.instants import BoundedDatetime
from app.core.pagination import Keyset
from app.models import MentoringSession, SessionFeedback
from app.schemas.sessions import FeedbackPublic, MenteeSessionPublic, MentorSessionPublic


async def own_session(session: AsyncSession, *, principal: Principal, session_id: uuid.UUID,
                      lock: bool = False) -> MentoringSession:
    """One of the caller's sessions (as its mentor, or as its mentee), optionally locked."""
    column = (MentoringSession.mentee_id if principal.role == "mentee"
              else MentoringSession.mentor_id)
    query = select(MentoringSession).where(MentoringSession.id == session_id,
                                           column == principal.user_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = await session.scalar(query)
    if row is None:
        raise NotFound("No such session")
    return row


def mentor_public(row: MentoringSession) -> MentorSessionPublic:
    return MentorSessionPublic.model_validate(row)


async def get_mentor_session(session: AsyncSession, *, principal: Principal,
                             session_id: uuid.UUID) -> MentorSessionPublic:
    return mentor_public(await own_session(session, principal=principal,
                                           session_id=session_id))


SESSIONS_CURSOR = Keyset("sessions", BoundedDatetime, uuid.UUID)  # (starts_at, id)


def _window_and_cursor(query, *, starts_from: datetime | None, starts_to: datetime | None,
                       cursor: str | None):
    if starts_from and starts_to and starts_from > starts_to:
        raise Unprocessable("`from` must not be after `to`")
    if starts_from:
        query = query.where(MentoringSession.starts_at >= starts_from)
    if starts_to:
        query = query.where(MentoringSession.starts_at < starts_to)
    after = SESSIONS_CURSOR.decode(cursor)  # `?cursor=` (empty) is the first page
    if after is not None:
        query = query.where(tuple_(MentoringSession.starts_at, MentoringSession.id) > after)
    return query.order_by(MentoringSession.starts_at, MentoringSession.id)


def _next_cursor(rows: list, limit: int, key=lambda row: row) -> str | None:
    if len(rows) <= limit:
        return None
    last = key(rows[limit - 1])
    return SESSIONS_CURSOR.encode(last.starts_at, last.id)


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
    return [mentor_public(r) for r in rows[:limit]], _next_cursor(rows, limit)


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
        if sqlstate_of(exc) == "23505":
            raise Conflict("Feedback was already given for this session",
                           code="feedback_exists") from exc
        raise
    return FeedbackPublic.model_validate(feedback)
