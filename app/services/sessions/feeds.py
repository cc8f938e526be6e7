"""Calendar subscription URLs that work without a JWT until rotated or revoked.

A feed token is 32 random bytes (URL-safe base64), not a JWT: it names nothing and expires
never; only its SHA-256 is stored (`calendar_feed_tokens`, one row per user), so a database
leak yields no working URL. Issuing a new token replaces the hash (the previous URL stops
working at once); deleting the row revokes it. The feed route looks the hash up through
`calendar_feed_owner()` (migration 0016), which answers only for an active mentor or mentee,
then reads the calendar under RLS as that user, exactly as the JWT route does.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.db import SET_PRINCIPAL, principal_parameters
from app.models import CalendarFeedToken

FEED_PATH = "/api/v1/calendar/feeds/{token}.ics"
_OWNER = text("select user_id, role from calendar_feed_owner(:hash)")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue_feed_token(session: AsyncSession, *, principal: Principal,
                           now: datetime | None = None) -> str:
    """A new token for the caller, replacing (revoking) any previous one."""
    token = secrets.token_urlsafe(32)
    digest = token_hash(token)
    await session.execute(
        insert(CalendarFeedToken)
        .values(user_id=principal.user_id, token_hash=digest, created_at=now or datetime.now(UTC))
        .on_conflict_do_update(index_elements=["user_id"],
                               set_={"token_hash": digest,
                                     "created_at": now or datetime.now(UTC)}))
    return token


async def revoke_feed_token(session: AsyncSession, *, principal: Principal) -> bool:
    deleted = await session.execute(
        delete(CalendarFeedToken).where(CalendarFeedToken.user_id == principal.user_id)
        .returning(CalendarFeedToken.user_id))
    return deleted.first() is not None


async def act_as_feed_owner(session: AsyncSession, *, token: str) -> Principal | None:
    """In a transaction opened without identity: who `token` belongs to (None: no such
    token, or its owner is no longer an active mentor or mentee), and from then on act as
    them under RLS for the rest of the transaction."""
    if not token or len(token) > 200:
        return None
    row = (await session.execute(_OWNER, {"hash": token_hash(token)})).first()
    if row is None:
        return None
    principal = Principal(row.user_id, row.role)
    await session.execute(SET_PRINCIPAL, principal_parameters(principal))
    return principal


def feed_url(token: str, *, base_url: str) -> str:
    return base_url.rstrip("/") + FEED_PATH.format(token=token)
