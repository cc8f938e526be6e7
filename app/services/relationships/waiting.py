"""The waiting list: active mentees with no active assignment, longest waiting first.

`waiting_mentees` is kept by triggers (migration 0011) whichever path changes users or
assignments, so a page is one statement: a range scan of `ix_waiting_mentees_since_mentee_id`
(keyset on `(since, mentee_id)`), the users by primary key, and `last_match_reason` from the
latest finished matcher run (its `unplaced` map: mentee id -> reason, read by key).
"""

from __future__ import annotations

import uuid

from pydantic import TypeAdapter
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
# The page comes back as one JSON array (parsed in pydantic-core, not 50 rows each made a
# model in Python) plus the key of its last row for the cursor; `limit` + 1 rows are read
# to tell whether another page follows. A user RLS hides is left out of the items but
# still moves the cursor.
_PAGE = """
with page as materialized (
  select w.mentee_id, w.since, row_number() over (order by w.since, w.mentee_id) as n
    from (select w.mentee_id, w.since from waiting_mentees w {where}
           order by w.since, w.mentee_id limit :limit + 1) w
), run as materialized (
  select r.unplaced || '{{}}'::jsonb as unplaced from matching_runs r
   where r.status = 'done' and r.finished_at is not null
   order by r.finished_at desc limit 1
)
select (select coalesce(json_agg(json_build_object(
                 'mentee_id', p.mentee_id, 'name', u.name, 'email', u.email,
                 'timezone', u.timezone, 'tier', u.tier, 'interests', u.interests,
                 'waiting_since', to_char(p.since at time zone 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                 'last_match_reason', (select run.unplaced ->> p.mentee_id::text from run))
               order by p.n), '[]')
          from page p
          join lateral (select * from users u where u.id = p.mentee_id limit 1) u on true
         where p.n <= :limit) as items,
       (select count(*) > :limit from page) as more,
       last.since as last_since, last.mentee_id as last_id
  from (select 1) one
  left join page last on last.n = :limit
"""
_FIRST_PAGE = text(_PAGE.format(where=""))
_NEXT_PAGE = text(_PAGE.format(
    where="where (w.since, w.mentee_id) > (:after_since, :after_id)"))
_ITEMS = TypeAdapter(list[WaitingMentee])


WAITING_CURSOR = Keyset("waiting", BoundedDatetime, uuid.UUID)  # (since, mentee_id)


async def list_waiting(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None,
) -> tuple[list[WaitingMentee], str | None]:
    after = WAITING_CURSOR.decode(cursor)
    if after is None:
        row = (await session.execute(_FIRST_PAGE, {"limit": limit})).one()
    else:
        row = (await session.execute(_NEXT_PAGE, {
            "limit": limit, "after_since": after[0], "after_id": after[1]})).one()
    items = _ITEMS.validate_json(row.items) if isinstance(row.items, str | bytes) \
        else _ITEMS.validate_python(row.items)
    next_cursor = WAITING_CURSOR.encode(row.last_since, row.last_id) if row.more else None
    return items, next_cursor


async def waiting_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(WaitingRow))
