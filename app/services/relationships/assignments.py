"""Assignments: who mentors whom, from the first match to the end of the relationship.

Invariants: one active assignment per mentee (partial unique index) and a mentor's active
mentees never exceed `mentor_max_mentees`. Counting then inserting is a race, so the users
rows involved (the mentee, the new mentor and, for a reassignment, the old mentor) are
locked first, in id order in one statement (app/services/relationships/locks.py): changes
of one mentee or of one mentor run one after the other, each counting what the previous
one committed, and a booking with the old mentor (which locks that mentor's row) is either
committed before the reassignment reads the sessions, or sees the assignment ended.

Reassignment ends the old active assignment (`end_reason = 'reassigned'`). Assigning a
mentee to the mentor they already have changes nothing and returns the existing assignment
with `created = False` (the route answers 200 instead of 201), so retries are harmless.
What happens to the sessions is decided above (app/services/programme/).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import CapacityExceeded, Conflict, InvalidTransition, NotFound, Unprocessable
from app.core.instants import BoundedDatetime
from app.core.outbox import emit
from app.core.pagination import Keyset
from app.models import Assignment, User
from app.schemas.relationships import AssignmentHistoryItem, AssignmentPublic
from app.services.relationships import reasons as why
from app.services.relationships.locks import lock_stable, lock_users


class InactiveUser(Conflict):
    code, title = "user_inactive", "The user is deactivated"


@dataclass
class AssignmentChange:
    public: AssignmentPublic
    mentee: User
    mentor: User
    previous: Assignment | None  # the assignment this one replaced (now ended)


def _public(row: Assignment, *, previous_mentor_id: uuid.UUID | None,
            created: bool) -> AssignmentPublic:
    return AssignmentPublic(
        id=row.id, mentee_id=row.mentee_id, mentor_id=row.mentor_id, source=row.source,
        score=row.score, reasons=list(row.reasons or []), assigned_by=row.assigned_by,
        started_at=row.started_at, previous_mentor_id=previous_mentor_id, created=created,
    )


def history_item(row: Assignment, mentor_name: str | None = None) -> AssignmentHistoryItem:
    return AssignmentHistoryItem(
        id=row.id, mentee_id=row.mentee_id, mentor_id=row.mentor_id, mentor_name=mentor_name,
        source=row.source, score=row.score, started_at=row.started_at, ended_at=row.ended_at,
        end_reason=row.end_reason)


def _active_of_mentee(mentee_id: uuid.UUID):
    return select(Assignment).where(Assignment.mentee_id == mentee_id,
                                    Assignment.ended_at.is_(None))


async def current_mentor_id(session: AsyncSession, mentee_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(
        select(Assignment.mentor_id).where(Assignment.mentee_id == mentee_id,
                                           Assignment.ended_at.is_(None)))


async def mentees_of(session: AsyncSession, mentor_id: uuid.UUID) -> set[uuid.UUID]:
    return set(await session.scalars(
        select(Assignment.mentee_id).where(Assignment.mentor_id == mentor_id,
                                           Assignment.ended_at.is_(None))))


async def end_active(
    session: AsyncSession, row: Assignment, *, reason: str, at: datetime,
    replaced_by: uuid.UUID | None = None,
) -> Assignment:
    """End `row` (locked by the caller) and emit `assignment.ended`."""
    row.ended_at, row.end_reason = at, reason
    await session.flush()  # frees the "one active assignment" slot before any insert
    data = {"assignment_id": row.id, "mentee_id": row.mentee_id, "mentor_id": row.mentor_id,
            "started_at": row.started_at, "ended_at": at, "end_reason": reason}
    if replaced_by is not None:
        data["replaced_by"] = replaced_by
    await emit(session, type="assignment.ended", data=data,
               recipients=[row.mentor_id, row.mentee_id], occurred_at=at)
    return row


async def assign_locked(
    session: AsyncSession,
    *,
    principal: Principal | None,
    mentee_id: uuid.UUID,
    mentor_id: uuid.UUID,
    source: str = "manual",
    score: float | None = None,
    reasons: Iterable[str] = (),
    at: datetime | None = None,
) -> AssignmentChange:
    """Assign or reassign `mentee_id` to `mentor_id` in the caller's transaction; the users
    rows of the mentee, the new and the old mentor stay locked until it commits.

    Raises NotFound (unknown mentee or mentor), Unprocessable `not_a_mentor` /
    `not_a_mentee`, 409 `user_inactive`, CapacityExceeded (the mentor is full). `principal`
    is the director who assigns (None: the system)."""
    if mentee_id == mentor_id:
        raise Unprocessable("A mentor cannot be assigned to themselves", code="not_a_mentee")

    async def involved() -> set[uuid.UUID]:
        current = await current_mentor_id(session, mentee_id)
        return {mentee_id, mentor_id} | ({current} if current else set())

    users = await lock_stable(session, involved)
    mentee, mentor = users.get(mentee_id), users.get(mentor_id)
    if mentee is None:
        raise NotFound("No such mentee")
    if mentor is None:
        raise NotFound("No such mentor")
    if not mentor.is_mentor:
        raise Unprocessable("That user is not a mentor", code="not_a_mentor")
    if mentee.role != "mentee":
        raise Unprocessable("That user is not a mentee", code="not_a_mentee")
    for user in (mentee, mentor):
        if not user.active:
            raise InactiveUser(f"{user.name} is deactivated")

    current = await session.scalar(_active_of_mentee(mentee_id).with_for_update())
    if current is not None and current.mentor_id == mentor_id:
        return AssignmentChange(_public(current, previous_mentor_id=None, created=False),
                                mentee, mentor, None)

    active = await session.scalar(
        select(func.count()).select_from(Assignment)
        .where(Assignment.mentor_id == mentor_id, Assignment.ended_at.is_(None))
    )
    if active >= mentor.mentor_max_mentees:
        raise CapacityExceeded(
            f"The mentor already has {active} of {mentor.mentor_max_mentees} mentees",
            mentees_active=active, mentees_max=mentor.mentor_max_mentees,
        )

    at = at or datetime.now(UTC)
    new_id = uuid.uuid4()
    if current is not None:
        await end_active(session, current, reason="reassigned", at=at, replaced_by=new_id)
    reasons = list(reasons) or ([why.MANUAL] if source == "manual" else [])
    row = Assignment(
        id=new_id, mentee_id=mentee_id, mentor_id=mentor_id, source=source, score=score,
        reasons=reasons, assigned_by=principal.user_id if principal else None,
        started_at=at,
    )
    session.add(row)
    await session.flush()
    previous_mentor_id = current.mentor_id if current is not None else None
    await emit(
        session,
        type="assignment.created",
        data={"assignment_id": new_id, "mentee_id": mentee_id, "mentor_id": mentor_id,
              "source": source, "score": score, "reasons": list(row.reasons),
              "previous_mentor_id": previous_mentor_id, "started_at": at},
        recipients=[mentor_id, mentee_id],
        occurred_at=at,
    )
    return AssignmentChange(_public(row, previous_mentor_id=previous_mentor_id, created=True),
                            mentee, mentor, current)


async def assign_mentee(session: AsyncSession, **kwargs) -> AssignmentPublic:
    """`assign_locked` for callers that need only the result (sessions untouched)."""
    return (await assign_locked(session, **kwargs)).public


async def end_assignment(
    session: AsyncSession, *, assignment_id: uuid.UUID, reason: str,
    at: datetime | None = None,
) -> Assignment:
    """End an active assignment (users rows of the pair locked first, then the row).
    404 unknown; 409 `invalid_transition` if it has ended already."""
    found = await session.scalar(select(Assignment).where(Assignment.id == assignment_id))
    if found is None:
        raise NotFound("No such assignment")
    await lock_users(session, [found.mentee_id, found.mentor_id])
    row = await session.scalar(
        select(Assignment).where(Assignment.id == assignment_id).with_for_update()
        .execution_options(populate_existing=True))
    if row.ended_at is not None:
        raise InvalidTransition("The assignment has already ended", current_status="ended")
    return await end_active(session, row, reason=reason, at=at or datetime.now(UTC))


HISTORY_CURSOR = Keyset("assignments", BoundedDatetime, uuid.UUID)  # (started_at, id)


async def assignment_history(
    session: AsyncSession, *, mentee_id: uuid.UUID, limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AssignmentHistoryItem], str | None]:
    """Every assignment the mentee ever had, newest first, keyset-paginated (404 for an
    unknown user)."""
    if await session.scalar(select(User.id).where(User.id == mentee_id)) is None:
        raise NotFound("No such mentee", code="mentee_not_found")
    query = (select(Assignment, User.name).join(User, User.id == Assignment.mentor_id)
             .where(Assignment.mentee_id == mentee_id))
    after = HISTORY_CURSOR.decode(cursor)
    if after is not None:
        query = query.where(tuple_(Assignment.started_at, Assignment.id) < after)
    rows = (await session.execute(
        query.order_by(Assignment.started_at.desc(), Assignment.id.desc()).limit(limit + 1)
    )).all()
    items = [history_item(row, name) for row, name in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = HISTORY_CURSOR.encode(last.started_at, last.id)
    return items, next_cursor
