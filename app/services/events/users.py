"""Users provisioned by the platform's identity service: `PUT /api/v1/users/{id}` and
`user.upserted` events, with what a change of role or of the active flag implies."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import Conflict, NotFound
from app.models import User
from app.schemas.events import UserUpsert
from app.services.programme import lifecycle
from app.services.sessions.video import VideoProvider

# Optional fields written only when sent (None for a non-nullable column = not sent).
_OPTIONAL = ("timezone", "tier", "interests", "mentor_capacity_weekly", "mentor_max_mentees",
             "mentor_specialties", "mentor_availability", "languages", "active")
_NULLABLE = {"tier"}


def _user_values(user_id: uuid.UUID, user: UserUpsert) -> dict[str, Any]:
    dumped = user.model_dump(mode="json")
    values: dict[str, Any] = {
        "id": user_id, "email": user.email, "name": user.name, "role": user.role,
        "is_mentor": user.is_mentor if user.is_mentor is not None else user.role == "mentor",
    }
    for name in _OPTIONAL:
        if name in user.model_fields_set and (dumped[name] is not None or name in _NULLABLE):
            values[name] = dumped[name]
    return values


async def upsert_user(
    session: AsyncSession, *, user_id: uuid.UUID, user: UserUpsert, index: int | None = None
) -> bool:
    """Create or update the user (idempotent: an identical upsert changes nothing, not even
    `updated_at`). Returns True when the user was created. Another user's email, or an
    erased user's id (a tombstone: app/services/compliance/erasure.py): 409."""
    if await session.scalar(select(User.erased_at).where(User.id == user_id)) is not None:
        raise Conflict("This user was erased; the id cannot be used again", code="erased")
    taken = await session.scalar(
        select(User.id).where(func.lower(User.email) == user.email.lower(), User.id != user_id)
    )
    if taken is not None:
        loc = ["body", "events", index, "data", "email"] if index is not None else ["body", "email"]
        raise Conflict("Another user has this email", code="email_taken",
                       errors=[{"loc": loc, "msg": "email taken", "type": "email_taken"}])
    values = _user_values(user_id, user)
    statement = pg_insert(User).values(**values)  # DO UPDATE: not in app.core.sql's insert
    columns = [name for name in values if name != "id"]
    changed = or_(*(User.__table__.c[name].is_distinct_from(statement.excluded[name])
                    for name in columns))
    statement = statement.on_conflict_do_update(
        index_elements=["id"],
        set_={**{name: statement.excluded[name] for name in columns}, "updated_at": func.now()},
        where=changed,
    ).returning(literal_column("xmax = 0"))
    return bool(await session.scalar(statement))


async def provision_user(
    session: AsyncSession, *, principal: Principal | None, user_id: uuid.UUID,
    user: UserUpsert, video: VideoProvider, index: int | None = None,
) -> bool:
    """`upsert_user` with what a change of role or of the active flag implies (ended
    assignments, cancelled sessions, `user.deactivated`: app/services/programme/lifecycle.py),
    in the same transaction. Returns True when the user was created."""
    before = await lifecycle.prepare_user_change(session, user_id=user_id)
    created = await upsert_user(session, user_id=user_id, user=user, index=index)
    await lifecycle.apply_user_change(session, principal=principal, user_id=user_id,
                                      before=before, video=video)
    return created


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.scalar(
        select(User).where(User.id == user_id).execution_options(populate_existing=True)
    )
    if user is None:
        raise NotFound("No such user")
    return user
