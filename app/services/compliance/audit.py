"""Reading the audit trail (the database writes it: migration 0008) and exporting a user's data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.pagination import Keyset
from app.models import AuditEntry, User
from app.schemas.common import Page
from app.schemas.compliance import AuditEntryPublic, UserExport

# Where a user's personal data lives: table -> the condition naming the user (:user_id).
PERSONAL_DATA: dict[str, str] = {
    "users": "id = :user_id",
    "assignments": "mentee_id = :user_id or mentor_id = :user_id",
    "sessions": "mentee_id = :user_id or mentor_id = :user_id",
    "session_feedback": "mentee_id = :user_id or mentor_id = :user_id",
    "mission_submissions": "mentee_id = :user_id",
    "mission_reviews": "mentee_id = :user_id or mentor_id = :user_id",
    "flags": "mentee_id = :user_id or raised_by = :user_id",
    "work_items": "mentee_id = :user_id",
    "readiness_history": "mentee_id = :user_id",
    "mentee_signals": "mentee_id = :user_id",
    "mentee_preferences": "mentee_id = :user_id",
    "matching_proposals": "mentee_id = :user_id or mentor_id = :user_id",
    "waiting_mentees": "mentee_id = :user_id",
    "mentor_time_off": "mentor_id = :user_id",
    "capacity_alerts": "mentor_id = :user_id",
    "calendar_feed_tokens": "user_id = :user_id",
    "audit_log": "target_id = cast(:user_id as text) or actor_id = :user_id",
}
# Tables whose rows hold a secret: only these columns go out (a feed token's hash is a
# credential, not the user's data; that a feed exists and since when is).
_COLUMNS = {"calendar_feed_tokens": "user_id, created_at"}
# One statement: a JSON array of rows per table.
_EXPORT = text("select json_build_object({}) as data".format(", ".join(
    f"'{table}', (select coalesce(json_agg(t), '[]') from "
    f"(select {_COLUMNS.get(table, '*')} from {table} where {where}) t)"
    for table, where in PERSONAL_DATA.items()
)))


# The entry id (ids grow with time); a bigint.
AUDIT_CURSOR = Keyset("audit", Annotated[int, Field(gt=0, lt=2**63)])


async def list_audit(session: AsyncSession, *, actor_id: uuid.UUID | None,
                     target_id: str | None, action: str | None, since: datetime | None,
                     until: datetime | None, limit: int,
                     cursor: str | None) -> Page[AuditEntryPublic]:
    """Newest first; keyset on the entry id (ids grow with time)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    position = AUDIT_CURSOR.decode(cursor)
    if position is not None:
        query = query.where(AuditEntry.id < position[0])
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[AuditEntryPublic](
        items=[AuditEntryPublic.model_validate(row, from_attributes=True) for row in rows],
        next_cursor=AUDIT_CURSOR.encode(rows[-1].id) if more else None,
    )


async def export_user(session: AsyncSession, *, user_id: uuid.UUID) -> UserExport:
    if await session.get(User, user_id) is None:
        raise NotFound("No such user", code="not_found")
    data = (await session.execute(_EXPORT, {"user_id": user_id})).scalar_one()
    return UserExport(user_id=user_id, generated_at=datetime.now(UTC), data=data)
