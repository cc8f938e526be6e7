"""A mentor's time off: no session may start or run inside it (every booking route, through
the slot engine). Adding time off does not touch existing sessions; the ones inside are
returned as `conflicts` for the mentor to move or cancel.

Adding takes the mentor's row lock, the lock every booking of theirs takes first, so a
booking racing the new time off either committed before (and is listed as a conflict) or
sees it (and is refused).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.instants import BoundedDatetime
from app.core.pagination import Keyset
from app.models import MentoringSession, TimeOff, User
from app.schemas.scheduling import (
    TimeOffConflict,
    TimeOffCreate,
    TimeOffCreated,
    TimeOffPublic,
)


async def add_time_off(session: AsyncSession, *, principal: Principal,
                       body: TimeOffCreate) -> TimeOffCreated:
    mentor = await session.scalar(
        select(User.id).where(User.id == principal.user_id).with_for_update(key_share=True))
    if mentor is None:
        raise NotFound("Your mentor profile does not exist")
    row = TimeOff(id=uuid.uuid4(), mentor_id=principal.user_id,
                  starts_at=body.starts_at.astimezone(UTC),
                  ends_at=body.ends_at.astimezone(UTC), reason=body.reason)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    conflicts = await session.scalars(
        select(MentoringSession)
        .where(MentoringSession.mentor_id == principal.user_id,
               MentoringSession.status == "scheduled",
               MentoringSession.starts_at < row.ends_at,
               MentoringSession.ends_at > row.starts_at)
        .order_by(MentoringSession.starts_at, MentoringSession.id))
    return TimeOffCreated(
        **TimeOffPublic.model_validate(row).model_dump(),
        conflicts=[TimeOffConflict(session_id=s.id, mentee_id=s.mentee_id,
                                   starts_at=s.starts_at, ends_at=s.ends_at)
                   for s in conflicts])


TIME_OFF_CURSOR = Keyset("time_off", BoundedDatetime, uuid.UUID)  # (starts_at, id)


async def list_time_off(session: AsyncSession, *, principal: Principal,
                        ends_after: datetime | None, starts_before: datetime | None,
                        limit: int, cursor: str | None) -> tuple[list[TimeOffPublic], str | None]:
    """The mentor's time off by start (`ends_after` default now: current and future)."""
    query = select(TimeOff).where(
        TimeOff.mentor_id == principal.user_id,
        TimeOff.ends_at > (ends_after or datetime.now(UTC)))
    if starts_before is not None:
        query = query.where(TimeOff.starts_at < starts_before)
    after = TIME_OFF_CURSOR.decode(cursor)
    if after is not None:
        query = query.where(tuple_(TimeOff.starts_at, TimeOff.id) > after)
    rows = list(await session.scalars(
        query.order_by(TimeOff.starts_at, TimeOff.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = TIME_OFF_CURSOR.encode(last.starts_at, last.id)
    return [TimeOffPublic.model_validate(r) for r in rows[:limit]], next_cursor


async def delete_time_off(session: AsyncSession, *, principal: Principal,
                          time_off_id: uuid.UUID) -> None:
    deleted = await session.scalar(
        delete(TimeOff).where(TimeOff.id == time_off_id,
                              TimeOff.mentor_id == principal.user_id)
        .returning(TimeOff.id))
    if deleted is None:
        raise NotFound("No such time off")
