"""A mentee's preferences for the matcher (PUT/GET /api/v1/mentee/preferences)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.models import MenteePreferences
from app.schemas.matching import MenteePreferences as PreferencesIn
from app.schemas.matching import MenteePreferencesPublic


async def get_preferences(session: AsyncSession, *,
                          principal: Principal) -> MenteePreferencesPublic:
    row = await session.scalar(select(MenteePreferences).where(
        MenteePreferences.mentee_id == principal.user_id))
    if row is None:  # nothing stated yet: the defaults, which ask nothing
        return MenteePreferencesPublic(updated_at=None)
    return MenteePreferencesPublic.model_validate(row)


async def put_preferences(session: AsyncSession, *, principal: Principal,
                          preferences: PreferencesIn) -> MenteePreferencesPublic:
    """Replace the mentee's preferences (the next matcher run and publish honour them)."""
    values = preferences.model_dump()
    statement = pg_insert(MenteePreferences).values(mentee_id=principal.user_id, **values)
    statement = statement.on_conflict_do_update(
        index_elements=["mentee_id"], set_={**values, "updated_at": func.now()})
    await session.execute(statement)
    return await get_preferences(session, principal=principal)
