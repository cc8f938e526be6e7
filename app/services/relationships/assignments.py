"""Assigning a mentee to a mentor (manual by a director, or by the auto-matcher).

Invariants: one active assignment per mentee (partial unique index) and a mentor's active
mentees never exceed `mentor_max_mentees`. Counting then inserting is a race, so the mentor's
and the mentee's user rows are locked first (`SELECT ... FOR UPDATE`, both in one statement,
in id order so two assignments never wait on each other crosswise): concurrent assignments
to one mentor, or of one mentee, run one after the other and each counts what the previous
one committed.

Reassignment ends the old active assignment (`end_reason = 'reassigned'`). Assigning a
mentee to the mentor they already have changes nothing and returns the existing assignment
with `created = False` (the route answers 200 instead of 201), so retries are harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import CapacityExceeded, NotFound, Unprocessable
from app.core.outbox import emit
from app.models import Assignment, User
from app.schemas.director import AssignmentPublic
from app.services.relationships import reasons as why


def _public(row: Assignment, *, previous_mentor_id: uuid.UUID | None,
            created: bool) -> AssignmentPublic:
    return AssignmentPublic(
        id=row.id, mentee_id=row.mentee_id, mentor_id=row.mentor_id, source=row.source,
        score=row.score, reasons=list(row.reasons or []), assigned_by=row.assigned_by,
        started_at=row.started_at, previous_mentor_id=previous_mentor_id, created=created,
    )


async def assign_mentee(
    session: AsyncSession,
    *,
    principal: Principal | None,
    mentee_id: uuid.UUID,
    mentor_id: uuid.UUID,
    source: str = "manual",
    score: float | None = None,
    reasons: Iterable[str] = (),
) -> AssignmentPublic:
    """Assign or reassign `mentee_id` to `mentor_id` in the caller's transaction.

    Raises NotFound (unknown mentee or mentor), Unprocessable `not_a_mentor` /
    `not_a_mentee`, CapacityExceeded (the mentor is full). `principal` is the director who
    assigns (None: the system, e.g. the matcher on the worker engine)."""
    if mentee_id == mentor_id:
        raise Unprocessable("A mentor cannot be assigned to themselves", code="not_a_mentee")
    locked = (await session.scalars(
        select(User).where(User.id.in_([mentee_id, mentor_id])).order_by(User.id)
        .with_for_update()
    )).all()
    users = {user.id: user for user in locked}
    mentee, mentor = users.get(mentee_id), users.get(mentor_id)
    if mentee is None:
        raise NotFound("No such mentee")
    if mentor is None:
        raise NotFound("No such mentor")
    if not mentor.is_mentor:
        raise Unprocessable("That user is not a mentor", code="not_a_mentor")
    if mentee.role != "mentee":
        raise Unprocessable("That user is not a mentee", code="not_a_mentee")

    current = await session.scalar(
        select(Assignment).where(Assignment.mentee_id == mentee_id,
                                 Assignment.ended_at.is_(None))
    )
    if current is not None and current.mentor_id == mentor_id:
        return _public(current, previous_mentor_id=None, created=False)

    active = await session.scalar(
        select(func.count()).select_from(Assignment)
        .where(Assignment.mentor_id == mentor_id, Assignment.ended_at.is_(None))
    )
    if active >= mentor.mentor_max_mentees:
        raise CapacityExceeded(
            f"The mentor already has {active} of {mentor.mentor_max_mentees} mentees",
            mentees_active=active, mentees_max=mentor.mentor_max_mentees,
        )

    at = datetime.now(UTC)
    new_id = uuid.uuid4()
    previous_mentor_id = None
    if current is not None:
        previous_mentor_id = current.mentor_id
        current.ended_at = at
        current.end_reason = "reassigned"
        await session.flush()  # free the "one active assignment" slot before the insert
        await emit(
            session,
            type="assignment.ended",
            data={"assignment_id": current.id, "mentee_id": mentee_id,
                  "mentor_id": current.mentor_id, "ended_at": at, "end_reason": "reassigned",
                  "replaced_by": new_id},
            recipients=[current.mentor_id, mentee_id],
            occurred_at=at,
        )
    reasons = list(reasons) or ([why.MANUAL] if source == "manual" else [])
    row = Assignment(
        id=new_id, mentee_id=mentee_id, mentor_id=mentor_id, source=source, score=score,
        reasons=reasons, assigned_by=principal.user_id if principal else None,
        started_at=at,
    )
    session.add(row)
    await session.flush()
    await emit(
        session,
        type="assignment.created",
        data={"assignment_id": new_id, "mentee_id": mentee_id, "mentor_id": mentor_id,
              "source": source, "score": score, "reasons": list(row.reasons),
              "previous_mentor_id": previous_mentor_id, "started_at": at},
        recipients=[mentor_id, mentee_id],
        occurred_at=at,
    )
    return _public(row, previous_mentor_id=previous_mentor_id, created=True)
