"""The waiting list: active mentees with no active assignment, longest waiting first.

`waiting_mentees` is kept by triggers (migration 0011) whichever path changes users or
assignments, so a page is one statement: a range scan of `ix_waiting_mentees_since_mentee_id`
(keyset on `(since, mentee_id)`), the users by primary key, and `last_match_reason` from the
latest finished matcher run (`matching_unplaced`: its `unplaced` map as rows, read by key).
"""

from __future__ import annotations

import uuid

from pydantic import TypeAdapter
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.instants import BoundedDatetime
from app.core.pagination import Keyset
from app.core.sql import DriverQuery
from app.models import WaitingMentee as WaitingRow
from app.schemas.relationships import WaitingMentee

# One statement per page: the keyset range scan of the waiting index, each row's user by
# primary key (a lateral lookup; its LIMIT keeps the planner from flattening it into a hash
# join over every user, which RLS's filter makes it prefer: 60+ ms instead of 1), and
# its reason by primary key in `matching_unplaced` (the latest finished matcher run's
# `unplaced` map as rows, migration 0027; the run found by its partial index). Reading the
# map itself decompressed all of it per page (105 kB for 3,000 unplaced mentees) and looked
# each key up in it: 0.85 of the page's 1.3 ms in Postgres at 1K x 20K.
# The page comes back as the JSON text of its items, exactly as `Page[WaitingMentee]`
# serialises them (compact `row_to_json`, fields in the model's order, instants in UTC with
# microseconds only when there are some): the route sends it as it is, without parsing and
# validating 50 objects and serialising them again (tests/relationships/test_hot_reads.py
# compares both byte for byte). Plus the key of its last row for the cursor; `limit` + 1
# rows are read to tell whether another page follows. A user RLS hides is left out of the
# items but still moves the cursor. Run on the driver connection (DriverQuery).
_INSTANT = """to_char({0} at time zone 'UTC',
                   case when date_trunc('second', {0} at time zone 'UTC')
                             = {0} at time zone 'UTC'
                        then 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
                        else 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' end)"""
_PAGE = """
with page as materialized (
  select w.mentee_id, w.since, row_number() over (order by w.since, w.mentee_id) as n
    from (select w.mentee_id, w.since from waiting_mentees w {where}
           order by w.since, w.mentee_id limit :limit + 1) w
), run as materialized (
  select r.id from matching_runs r
   where r.status = 'done' and r.finished_at is not null
   order by r.finished_at desc limit 1
)
select (select '[' || coalesce(string_agg(row_to_json(i)::text, ',' order by p.n), '') || ']'
          from page p
          join lateral (select * from users u where u.id = p.mentee_id limit 1) u on true
         cross join lateral (
           select p.mentee_id, u.name, u.email, u.timezone, u.tier,
                  coalesce(u.interests, '{{}}') as interests,
                  {since} as waiting_since,
                  (select m.reason from matching_unplaced m
                    where m.run_id = (select run.id from run)
                      and m.mentee_id = p.mentee_id) as last_match_reason
         ) i
         where p.n <= :limit) as items,
       (select count(*) > :limit from page) as more,
       last.since as last_since, last.mentee_id as last_id
  from (select 1) one
  left join page last on last.n = :limit
"""
_FIRST_PAGE = DriverQuery(text(_PAGE.format(where="", since=_INSTANT.format("p.since"))))
_NEXT_PAGE = DriverQuery(text(_PAGE.format(
    where="where (w.since, w.mentee_id) > (:after_since, :after_id)",
    since=_INSTANT.format("p.since"))))
_ITEMS = TypeAdapter(list[WaitingMentee])


WAITING_CURSOR = Keyset("waiting", BoundedDatetime, uuid.UUID)  # (since, mentee_id)


async def list_waiting_json(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None,
) -> tuple[str, str | None]:
    """A page as the JSON text of its items (what `Page[WaitingMentee]` would serialise)
    and the next page's cursor."""
    after = WAITING_CURSOR.decode(cursor)
    if after is None:
        row = await _FIRST_PAGE.fetchrow(session, {"limit": limit})
    else:
        row = await _NEXT_PAGE.fetchrow(session, {
            "limit": limit, "after_since": after[0], "after_id": after[1]})
    next_cursor = WAITING_CURSOR.encode(row["last_since"], row["last_id"]) \
        if row["more"] else None
    return row["items"], next_cursor


async def list_waiting(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None,
) -> tuple[list[WaitingMentee], str | None]:
    items, next_cursor = await list_waiting_json(session, limit=limit, cursor=cursor)
    return _ITEMS.validate_json(items), next_cursor


async def waiting_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(WaitingRow))
