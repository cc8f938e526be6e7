"""Flags: a mentor's concern about one of their mentees, seen by mentors and directors.

`flag.raised` is urgent and carries `director_ids`; its recipients are the directors and the
mentor, never the mentee (the mentee only ever sees the at-risk banner, not the flag).
Directors are resolved with the SECURITY DEFINER function `director_ids()` (migration 0005)
because RLS hides their rows from a mentor. No event carries the note: events also go
to webhooks read by student-facing services.

Directors act on flags: they resolve them or escalate them (`flag.escalated`, urgent, to
every director, the mentee's current mentor and whoever raised it). An escalated flag keeps
the stored status `open` (so it keeps counting as an open flag for risk and counts) with
`escalated_at` set; the API shows it as `escalated` until it is resolved. Transitions:
open -> escalated -> resolved, open -> resolved; anything else is 409 `invalid_transition`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import DateTime, Select, and_, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidTransition, NotFound
from app.core.instants import BoundedDatetime
from app.core.outbox import active_mentor_id, director_ids, emit
from app.core.pagination import Keyset
from app.models import Assignment, Flag, User
from app.schemas.risk import FlagPublic
from app.services.workqueue.queue import my_active_mentees


def public_status(flag: Flag) -> str:
    """`escalated` for an open flag a director escalated, else the stored status."""
    return "escalated" if flag.status == "open" and flag.escalated_at else flag.status


def to_public(flag: Flag, mentee_name: str | None) -> FlagPublic:
    return FlagPublic(
        id=flag.id, mentee_id=flag.mentee_id, mentee_name=mentee_name, raised_by=flag.raised_by,
        severity=flag.severity, category=flag.category, note=flag.note,
        status=public_status(flag), resolution=flag.resolution, resolved_by=flag.resolved_by,
        resolved_at=flag.resolved_at, escalated_at=flag.escalated_at,
        escalated_by=flag.escalated_by, created_at=flag.created_at,
    )


async def _my_mentee_name(session: AsyncSession, *, mentor_id: uuid.UUID,
                          mentee_id: uuid.UUID) -> str:
    name = await session.scalar(
        select(User.name)
        .join(Assignment, Assignment.mentee_id == User.id)
        .where(Assignment.mentor_id == mentor_id, Assignment.mentee_id == mentee_id,
               Assignment.ended_at.is_(None))
    )
    if name is None:
        raise NotFound("No such mentee among yours")
    return name


async def raise_flag(
    session: AsyncSession,
    *,
    mentor_id: uuid.UUID,
    mentee_id: uuid.UUID,
    severity: str,
    category: str,
    note: str | None = None,
) -> FlagPublic:
    mentee_name = await _my_mentee_name(session, mentor_id=mentor_id, mentee_id=mentee_id)
    at = datetime.now(UTC)
    flag = Flag(id=uuid.uuid4(), mentee_id=mentee_id, raised_by=mentor_id, severity=severity,
                category=category, note=note, status="open", created_at=at)
    session.add(flag)
    await session.flush()
    directors = await director_ids(session)
    await emit(
        session,
        type="flag.raised",
        data={
            "flag_id": flag.id, "mentee_id": mentee_id, "mentor_id": mentor_id,
            "severity": severity, "category": category, "raised_at": at,
            "director_ids": directors,
        },
        recipients=[*directors, mentor_id],
        occurred_at=at,
    )
    return to_public(flag, mentee_name)


async def _resolve(session: AsyncSession, flag: Flag, *, by: uuid.UUID,
                   resolution: str | None) -> None:
    if flag.status != "open":
        raise InvalidTransition("The flag is already resolved", current_status=flag.status)
    at = datetime.now(UTC)
    flag.status, flag.resolution, flag.resolved_by, flag.resolved_at = (
        "resolved", resolution, by, at)
    await session.flush()
    directors = await director_ids(session)
    await emit(
        session,
        type="flag.resolved",
        data={
            "flag_id": flag.id, "mentee_id": flag.mentee_id, "resolved_by": by,
            "severity": flag.severity, "category": flag.category, "resolved_at": at,
            "director_ids": directors,
        },
        recipients=[*directors, await active_mentor_id(session, flag.mentee_id),
                    flag.raised_by],
        occurred_at=at,
    )


async def resolve_flag(
    session: AsyncSession,
    *,
    mentor_id: uuid.UUID,
    flag_id: uuid.UUID,
    resolution: str | None = None,
) -> FlagPublic:
    """open (or escalated) → resolved, once. The current mentor may resolve any flag of
    their mentee (also one raised by a previous mentor)."""
    row = (await session.execute(
        select(Flag, User.name)
        .join(User, User.id == Flag.mentee_id)
        .where(Flag.id == flag_id, Flag.mentee_id.in_(my_active_mentees(mentor_id)))
        .with_for_update(of=Flag)
    )).first()
    if row is None:
        raise NotFound("No such flag among your mentees")
    flag, mentee_name = row
    await _resolve(session, flag, by=mentor_id, resolution=resolution)
    return to_public(flag, mentee_name)


async def director_update_flag(
    session: AsyncSession,
    *,
    director_id: uuid.UUID,
    flag_id: uuid.UUID,
    status: str,
    resolution: str | None = None,
) -> FlagPublic:
    """A director resolves or escalates any flag (see the module doc for transitions)."""
    row = (await session.execute(
        select(Flag, User.name).join(User, User.id == Flag.mentee_id)
        .where(Flag.id == flag_id).with_for_update(of=Flag)
    )).first()
    if row is None:
        raise NotFound("No such flag")
    flag, mentee_name = row
    if status == "resolved":
        await _resolve(session, flag, by=director_id, resolution=resolution)
        return to_public(flag, mentee_name)
    if flag.status != "open" or flag.escalated_at is not None:
        current = public_status(flag)
        raise InvalidTransition(f"A {current} flag cannot be escalated", current_status=current)
    at = datetime.now(UTC)
    flag.escalated_at, flag.escalated_by = at, director_id
    if resolution is not None:
        flag.resolution = resolution  # the director's note on why; kept until resolved
    await session.flush()
    directors = await director_ids(session)
    mentor_id = await active_mentor_id(session, flag.mentee_id)
    await emit(
        session,
        type="flag.escalated",
        data={
            "flag_id": flag.id, "mentee_id": flag.mentee_id, "mentor_id": mentor_id,
            "escalated_by": director_id, "severity": flag.severity,
            "category": flag.category, "escalated_at": at, "director_ids": directors,
        },
        recipients=[*directors, mentor_id, flag.raised_by],
        occurred_at=at,
    )
    return to_public(flag, mentee_name)


_STATUS_FILTERS = {
    "open": and_(Flag.status == "open", Flag.escalated_at.is_(None)),
    "escalated": and_(Flag.status == "open", Flag.escalated_at.is_not(None)),
    "resolved": Flag.status == "resolved",
}


FLAGS_CURSOR = Keyset("flags", BoundedDatetime, uuid.UUID)  # (created_at, id)


async def list_flags(
    session: AsyncSession,
    *,
    status: Sequence[str] = (),
    severity: Sequence[str] = (),
    mentee_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[FlagPublic], str | None]:
    """Every flag the caller may see (directors: all), newest first, keyset-paginated."""
    stmt: Select = select(Flag, User.name).join(User, User.id == Flag.mentee_id)
    if status:
        stmt = stmt.where(or_(*(_STATUS_FILTERS[value] for value in status)))
    if severity:
        stmt = stmt.where(Flag.severity.in_(severity))
    if mentee_id is not None:
        stmt = stmt.where(Flag.mentee_id == mentee_id)
    decoded = FLAGS_CURSOR.decode(cursor)
    if decoded:
        created, flag_id = decoded
        stmt = stmt.where(tuple_(Flag.created_at, Flag.id) < tuple_(
            literal(created, DateTime(timezone=True)), literal(flag_id, UUID(as_uuid=True))))
    stmt = stmt.order_by(Flag.created_at.desc(), Flag.id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1][0]
        next_cursor = FLAGS_CURSOR.encode(last.created_at, last.id)
    return [to_public(flag, name) for flag, name in page], next_cursor
