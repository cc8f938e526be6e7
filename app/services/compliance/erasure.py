"""Erasure (GDPR art. 17): pseudonymise a user, delete what was written by or about them.

In one transaction: the user is deactivated the programme's way (relationships end, future
sessions are cancelled, tokens stop: app/services/programme/lifecycle.py), identifying
fields are pseudonymised, free text written by or about them is deleted, and every copy of
their personal values in event payloads and the audit trail becomes "[erased]"
(`erase_personal_data`, migration 0012). The id stays as a tombstone (`erased_at`): rows
that aggregates count keep counting, and a later upsert of the id is 409 `erased`.
`user.erased` goes out. After commit the route removes the user's Redis keys (streams and
markers); Redis holds copies only, so a failure there loses nothing (the keys expire).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import InvalidTransition, NotFound
from app.core.outbox import emit
from app.models import MenteePreferences, User
from app.schemas.compliance import UserErased
from app.services.programme.lifecycle import deactivate_user
from app.services.sessions.video import VideoProvider

_ERASE_DATA = text("select erase_personal_data(:user_id, cast(:values as text[]))")


async def erase_user(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID,
                     video: VideoProvider, now: datetime | None = None) -> UserErased:
    now = now or datetime.now(UTC)
    user = await session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound("No such user")
    if user.erased_at is not None:
        raise InvalidTransition("This user was erased already")
    personal = [user.name, user.email, *user.interests, *user.mentor_specialties]
    await deactivate_user(session, principal=principal, user_id=user_id, video=video, now=now)
    await session.execute(update(User).where(User.id == user_id).values(
        name="Erased user", email=f"erased-{user_id}@erased.invalid", tier=None,
        interests=[], mentor_specialties=[], erased_at=now, active=False, languages=[],
        mentor_availability={"timezone": "UTC", "windows": []},
    ))
    # What the mentee asked of the matcher is theirs too (migration 0013: admins may delete).
    await session.execute(delete(MenteePreferences).where(
        MenteePreferences.mentee_id == user_id))
    await session.execute(_ERASE_DATA, {"user_id": user_id,
                                        "values": [v for v in personal if v]})
    await emit(session, type="user.erased", data={"user_id": user_id, "erased_at": now},
               recipients=[], occurred_at=now)
    return UserErased(user_id=user_id, erased_at=now)


async def forget_redis_keys(redis: Redis, settings: Settings, *, user_id: uuid.UUID) -> int:
    """Delete every key of this deployment that names the user (streams, stream metadata,
    markers). Best effort: Redis holds copies whose source of truth is already erased."""
    removed = 0
    try:
        async for key in redis.scan_iter(match=f"{settings.redis_prefix}*{user_id}*",
                                         count=1000):
            removed += await redis.delete(key)
    except RedisError:
        return removed
    return removed
