"""The waiting list: active mentees with no active assignment, longest waiting first.

`waiting_mentees` is kept by triggers (migration 0011) whichever path changes users or
assignments, so a page is one statement: a range scan of `ix_waiting_mentees_since_mentee_id`
(keyset on `(since, mentee_id)`), the users by primary key, and `last_match_reason` from the
latest finished matcher run (its `unplaced` map: mentee id -> reason, read by key).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.instants import BoundedDatetime
from app.core.pagination import Keyset
from app.models import WaitingMentee as WaitingRow
from app.schemas.relationships import WaitingMentee

# One statement per page: the keyset range scan of the waiting index, each row's user by
# primary key (a lateral lookup; its LIMIT keeps the planner from flattening it into a hash
# join over every user, which RLS's filter makes it prefer: 60+ ms instead of 1), and
# its reason looked up by key in the latest finished matcher run's `unplaced` map.
# `unplaced || '{}'` hands the CTE the map decompressed once: the stored column is a TOAST
# pointer, and `->>` on it decompressed the whole map again for every row of the page (a
# run that left 3,000 mentees unplaced, a 108 kB map: 85 ms per page instead of 2).
_PAGE = """
with page as materialized (
  select w.mentee_id, w.since from waiting_mentees w {where}
   order by w.since, w.mentee_id limit :limit
), run as materialized (
  select r.unplaced || '{{}}'::jsonb as unplaced from matching_runs r
   where r.status = 'done' and r.finished_at is not null
   order by r.finished_at desc limit 1
)
select p.mentee_id, p.since, u.name, u.email, u.timezone, u.tier, u.interests,
       (select run.unplaced ->> p.mentee_id::text from run) as reason
  from page p
  left join lateral (select * from users u where u.id = p.mentee_id limit 1) u on true
 order by p.since, p.mentee_id
"""
_FIRST_PAGE = text(_PAGE.format(where=""))
_NEXT_PAGE = text(_PAGE.format(
    where="where (w.since, w.mentee_id) > (:after_since, :after_id)"))


WAITING_CURSOR = Keyset("waiting", BoundedDatetime, uuid.UUID)  # (since, mentee_id)


async def list_waiting(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None,
) -> tuple[list[WaitingMentee], str | None]:
    after = WAITING_CURSOR.decode(cursor)
    if after is None:
        rows = (await session.execute(_FIRST_PAGE, {"limit": limit + 1})).all()
    else:
        rows = (await session.execute(_NEXT_PAGE, {
            "limit": limit + 1, "after_since": after[0], "after_id": after[1]})).all()
    items = [
        WaitingMentee(mentee_id=r.mentee_id, name=r.name, email=r.email, timezone=r.timezone,
                      tier=r.tier, interests=r.interests or [], waiting_since=r.since,
                      last_match_reason=r.reason)
        for r in rows[:limit] if r.name is not None  # a user RLS hides: left out
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = WAITING_CURSOR.encode(last.since, last.mentee_id)
    return items, next_cursor


async def waiting_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(WaitingRow))
