"""The waiting list: active mentees with no active assignment, longest waiting first.

`waiting_mentees` is kept by triggers (migration 0011) whichever path changes users or
assignments, so a page is one range scan of `ix_waiting_mentees_since_mentee_id` (keyset on
`(since, mentee_id)`) joined to the users, plus one lookup of the latest finished matcher
run for `last_match_reason` (its `unplaced` map: mentee id -> reason).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Text, any_, bindparam, cast, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.instants import BoundedDatetime
from app.core.pagination import Keyset
from app.models import User
from app.models import WaitingMentee as WaitingRow
from app.schemas.relationships import WaitingMentee

_LAST_REASONS = text("""
    select key::uuid as mentee_id, value as reason
      from (select unplaced from matching_runs
             where status = 'done' and finished_at is not null
             order by finished_at desc limit 1) r,
           jsonb_each_text(r.unplaced)
     where key = any(:ids)
""").bindparams(bindparam("ids", type_=ARRAY(Text)))


WAITING_CURSOR = Keyset("waiting", BoundedDatetime, uuid.UUID)  # (since, mentee_id)


async def list_waiting(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None,
) -> tuple[list[WaitingMentee], str | None]:
    # The page first (a range scan of the waiting index), then its users by primary key
    # (`= any(...)`: index lookups, whatever the planner thinks of RLS-filtered users).
    query = select(WaitingRow.mentee_id, WaitingRow.since)
    after = WAITING_CURSOR.decode(cursor)
    if after is not None:
        query = query.where(tuple_(WaitingRow.since, WaitingRow.mentee_id) > after)
    rows = (await session.execute(
        query.order_by(WaitingRow.since, WaitingRow.mentee_id).limit(limit + 1))).all()
    found = {} if not rows else {user.id: user for user in await session.scalars(
        select(User).where(User.id == any_(cast([r.mentee_id for r in rows[:limit]],
                                                 ARRAY(UUID(as_uuid=True))))))}
    page = [(found[r.mentee_id], r.since) for r in rows[:limit] if r.mentee_id in found]
    reasons: dict[uuid.UUID, str] = {}
    if page:
        found = await session.execute(_LAST_REASONS,
                                      {"ids": [str(user.id) for user, _ in page]})
        reasons = {row.mentee_id: row.reason for row in found}
    items = [
        WaitingMentee(mentee_id=user.id, name=user.name, email=user.email,
                      timezone=user.timezone, tier=user.tier, interests=user.interests or [],
                      waiting_since=since, last_match_reason=reasons.get(user.id))
        for user, since in page
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = WAITING_CURSOR.encode(last.since, last.mentee_id)
    return items, next_cursor


async def waiting_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(WaitingRow))
