"""Users who leave: deactivation, reactivation and role changes, with their relationships.

- Deactivation (`POST /api/v1/users/{id}/deactivate`, or `user.upserted` with
  `"active": false`): the user stops being active; their active assignment as a mentee and
  every one as a mentor end (`assignment.ended`, reason `deactivated`), their future live
  sessions are cancelled (`session.cancelled`, reason `deactivated`), `user.deactivated`
  goes out, and their tokens stop working (app/core/identity.py, within
  AUTH_CACHE_SECONDS on other replicas). Deactivating an inactive user changes nothing.
- Reactivation (`user.upserted` with `"active": true`) brings the user back without any
  relationship: a mentee joins the waiting list from that moment.
- A role change that makes a mentee something else ends their assignment the same way
  (reason `role_changed`); one that makes a mentor stop being a mentor (`is_mentor` false)
  ends their mentees' assignments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.outbox import emit
from app.models import Assignment, User
from app.schemas.relationships import UserDeactivated
from app.services.relationships.assignments import current_mentor_id, end_active, mentees_of
from app.services.relationships.locks import lock_stable
from app.services.sessions import handover
from app.services.sessions.video import VideoProvider


@dataclass
class Ended:
    assignments: list[uuid.UUID] = field(default_factory=list)
    sessions: list[uuid.UUID] = field(default_factory=list)


async def lock_relationships(session: AsyncSession, *, user_id: uuid.UUID, as_mentee: bool,
                             as_mentor: bool) -> None:
    """Lock the users rows of the user and of everyone they are in a relationship with (in
    those capacities), in the programme's order."""

    async def involved() -> set[uuid.UUID]:
        ids = {user_id}
        if as_mentee and (mentor_id := await current_mentor_id(session, user_id)):
            ids.add(mentor_id)
        if as_mentor:
            ids |= await mentees_of(session, user_id)
        return ids

    await lock_stable(session, involved)


async def end_relationships(
    session: AsyncSession, *, user_id: uuid.UUID, as_mentee: bool, as_mentor: bool,
    reason: str, now: datetime, video: VideoProvider, by: uuid.UUID | None,
) -> Ended:
    """End the user's active assignments (as a mentee and/or as a mentor) and cancel their
    future live sessions in those capacities. Locks in the programme's order.

    The caller has already changed the user (inactive, or another role): a service account
    may end and cancel only what concerns someone who left (RLS, migration 0011)."""
    await lock_relationships(session, user_id=user_id, as_mentee=as_mentee,
                             as_mentor=as_mentor)
    ended = Ended()
    sides = []
    if as_mentee:
        sides.append(Assignment.mentee_id == user_id)
    if as_mentor:
        sides.append(Assignment.mentor_id == user_id)
    for side in sides:
        rows = await session.scalars(
            select(Assignment).where(side, Assignment.ended_at.is_(None))
            .order_by(Assignment.id).with_for_update())
        for row in list(rows):
            await end_active(session, row, reason=reason, at=now)
            ended.assignments.append(row.id)
    rows = []
    if as_mentee:
        rows += await handover.future_sessions(session, now=now, mentee_id=user_id)
    if as_mentor:
        rows += await handover.future_sessions(session, now=now, mentor_id=user_id)
    unique = list({row.id: row for row in rows}.values())
    ended.sessions = await handover.cancel_sessions(session, unique, reason=reason,
                                                    cancelled_by=by, video=video)
    return ended


def _mentor_side(role: str, is_mentor: bool) -> bool:
    return bool(is_mentor) or role == "mentor"


async def _deactivated(
    session: AsyncSession, user: User, *, as_mentee: bool, as_mentor: bool,
    principal: Principal | None, video: VideoProvider, now: datetime,
) -> UserDeactivated:
    await lock_relationships(session, user_id=user.id, as_mentee=as_mentee,
                             as_mentor=as_mentor)
    user.active, user.deactivated_at = False, now  # first: what follows is for one who left
    await session.flush()
    ended = await end_relationships(
        session, user_id=user.id, as_mentee=as_mentee, as_mentor=as_mentor,
        reason="deactivated", now=now, video=video,
        by=principal.user_id if principal else None)
    await emit(session, type="user.deactivated",
               data={"user_id": user.id, "role": user.role, "deactivated_at": now,
                     "assignments_ended": ended.assignments,
                     "sessions_cancelled": ended.sessions},
               recipients=[user.id], occurred_at=now)
    return UserDeactivated(user_id=user.id, role=user.role, active=False, deactivated_at=now,
                           changed=True, assignments_ended=ended.assignments,
                           sessions_cancelled=ended.sessions)


async def deactivate_user(
    session: AsyncSession, *, principal: Principal | None, user_id: uuid.UUID,
    video: VideoProvider, now: datetime | None = None,
) -> UserDeactivated:
    """Deactivate the user with everything it implies (idempotent: `changed` false when
    the user was inactive already). 404 for an unknown user."""
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None:
        raise NotFound("No such user")
    if not user.active:
        return UserDeactivated(user_id=user.id, role=user.role, active=False,
                               deactivated_at=user.deactivated_at, changed=False)
    return await _deactivated(
        session, user, as_mentee=user.role == "mentee",
        as_mentor=_mentor_side(user.role, user.is_mentor), principal=principal, video=video,
        now=now or datetime.now(UTC))


@dataclass(frozen=True)
class Standing:
    """What decides a user's relationships, read (and locked) before an upsert."""

    role: str
    is_mentor: bool
    active: bool


async def prepare_user_change(session: AsyncSession, *, user_id: uuid.UUID) -> Standing | None:
    """Before an upsert may change the user's role or active flag: lock the users rows its
    relationships involve, in the programme's order (the upsert then writes a row already
    locked), and return the user's standing (None: a new user)."""
    row = (await session.execute(
        select(User.role, User.is_mentor, User.active).where(User.id == user_id))).first()
    if row is None:
        return None
    before = Standing(row.role, row.is_mentor, row.active)

    await lock_relationships(session, user_id=user_id, as_mentee=before.role == "mentee",
                             as_mentor=_mentor_side(before.role, before.is_mentor))
    return before


async def apply_user_change(
    session: AsyncSession, *, principal: Principal | None, user_id: uuid.UUID,
    before: Standing | None, video: VideoProvider, now: datetime | None = None,
) -> None:
    """After an upsert changed the user from `before`: a deactivation, a reactivation or a
    role change ends the relationships it must."""
    if before is None:
        return
    now = now or datetime.now(UTC)
    user = await session.scalar(select(User).where(User.id == user_id)
                                .execution_options(populate_existing=True))
    was_mentee = before.role == "mentee"
    was_mentor = _mentor_side(before.role, before.is_mentor)
    if before.active and not user.active:
        await _deactivated(session, user, as_mentee=was_mentee, as_mentor=was_mentor,
                           principal=principal, video=video, now=now)
        return
    if not before.active and user.active:
        user.deactivated_at = None  # back, without relationships
        await session.flush()
    leaves_mentee = was_mentee and user.role != "mentee"
    leaves_mentor = was_mentor and not _mentor_side(user.role, user.is_mentor)
    if leaves_mentee or leaves_mentor:
        await end_relationships(session, user_id=user_id, as_mentee=leaves_mentee,
                                as_mentor=leaves_mentor, reason="role_changed", now=now,
                                video=video, by=principal.user_id if principal else None)
