"""Publishing a dry run: its proposals that still hold become assignments.

Runs in the director's request (API role, RLS as staff) under the same locks as a matcher
run: the run's row (so two publishes queue up and the second one sees the first), the
matcher's advisory lock (no run writes meanwhile; waiting longer than
`match_lock_timeout_seconds` is 409 `matching_in_progress`), then the user rows of every
mentor and mentee concerned, in id order, as a director's assignment takes them. With those
held, each proposal is checked against the data as it is now:

    excluded                   the director left the mentee out (`exclude_mentee_ids`)
    mentee_not_waiting         the mentee has an active assignment now
    not_a_mentee / not_a_mentor  a role changed since the dry run (or the user is gone or
                               deactivated)
    max_timezone_offset_hours  the mentee's limit (as it is now) forbids the pair
    mentor_full                the mentor has no place left: their proposals with the best
                               fit keep the places there are

The checks, the insert and the `assignment.created` events are one statement (set-based:
16,000 proposals never travel to Python and back); only the time-zone limit is judged in
Python first, on the few proposals whose mentee has one, with the offsets the matcher uses.
The run records what was published and what was skipped; publishing again is 409
`already_published`, publishing a run whose proposals retention expired 409
`proposals_expired`. NumPy-free: the API process runs it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.dberrors import sqlstate_of
from app.core.errors import Conflict
from app.models import MatchingRun
from app.services.matching.runs import get_matching_run
from app.services.matching.writes import (
    ID_LIST,
    MATCHER_LOCK_KEY,
    assignment_events_sql,
    check_capacity,
)
from app.services.matching.zones import gap_hours, offsets
from app.services.mentors.capacity import MENTOR_ZONE_SQL

# The run's mentors and mentees, in id order (as a director's assignment locks them), in one
# statement: the ids never leave the database.
_LOCK_USERS = text("""
    select id from users
     where id in (select mentee_id from matching_proposals where run_id = :run_id
                  union all
                  select mentor_id from matching_proposals where run_id = :run_id)
     order by id for no key update
""")

# The proposals whose mentee has a time-zone limit (as it is now), with both zones: few rows;
# the limit is judged in Python (`zones`: the offsets the matcher uses, from zoneinfo).
_LIMITED = text(f"""
select p.mentee_id, me.timezone as mentee_zone, pr.max_timezone_offset_hours as max_offset,
       {MENTOR_ZONE_SQL} as mentor_zone
  from matching_proposals p
  join mentee_preferences pr on pr.mentee_id = p.mentee_id
  left join users me on me.id = p.mentee_id
  left join users u on u.id = p.mentor_id
 where p.run_id = :run_id and pr.max_timezone_offset_hours is not null
""")


def _listed(ids: str) -> str:
    """SQL: the proposal's mentee is in the uuid[] parameter `ids`. The list becomes a JSON
    object once (an InitPlan), each lookup a binary search on its keys: a list compared
    element by element would cost proposals x list."""
    return (f"coalesce((select jsonb_object_agg(id::text, true) from unnest(cast(:{ids} as "
            f"uuid[])) id), '{{}}') ? p.mentee_id::text")


# Every check, the insert and its events in one statement: the proposals never leave the
# database. `verdict` is the first reason that stops a proposal, in the order of the module
# doc; a mentor's places go to their proposals still standing, best fit first (then mentee
# id), as many as `mentor_max_mentees` less their active mentees leaves. Each lookup is by
# primary key or a partial index, row by row, so the plan stays good when the planner has no
# statistics yet for a run's proposals (a new run id: it expects a handful of rows). The
# result: one row per skipped proposal (in the order fit desc, mentee id; those the unique
# index refused after them), or a single row with no mentee when none was skipped, each
# carrying the totals and the mentors given places (for the capacity check).
_PUBLISH = text(f"""
with proposal as materialized (
    select p.mentee_id, p.mentor_id, p.fit, p.reasons, u.mentor_max_mentees,
           case when {_listed('excluded')} then 'excluded'
                when not coalesce(me.role = 'mentee' and not me.is_mentor and me.active, false)
                     then 'not_a_mentee'
                when exists (select 1 from assignments a
                              where a.mentee_id = p.mentee_id and a.ended_at is null)
                     then 'mentee_not_waiting'
                when not coalesce(u.is_mentor and u.active, false) then 'not_a_mentor'
                when {_listed('too_far')} then 'max_timezone_offset_hours'
           end as reason
      from matching_proposals p
      left join users me on me.id = p.mentee_id
      left join users u on u.id = p.mentor_id
     where p.run_id = :run_id
),
load as (  -- active mentees per mentor concerned, as a JSON object (see `_listed`)
    select jsonb_object_agg(a.mentor_id::text, a.active) as active
      from (select a.mentor_id, count(*) as active from assignments a
             where a.ended_at is null
               and a.mentor_id in (select mentor_id from proposal where reason is null)
             group by a.mentor_id) a
),
decided as materialized (  -- the place a proposal still standing takes at its mentor
    select p.mentee_id, p.mentor_id, p.fit, p.reasons,
           case when p.reason is null
                 and row_number() over (partition by p.mentor_id, p.reason is null
                                        order by p.fit desc, p.mentee_id)
                     + coalesce(((select active from load) ->> p.mentor_id::text)::int, 0)
                     > p.mentor_max_mentees
                then 'mentor_full' else p.reason end as verdict
      from proposal p
),
inserted as (
    insert into assignments (id, mentee_id, mentor_id, source, score, reasons, assigned_by,
                             started_at)
    select gen_random_uuid(), d.mentee_id, d.mentor_id, 'auto', d.fit, d.reasons,
           :assigned_by, :now
      from decided d where d.verdict is null
        on conflict (mentee_id) where ended_at is null do nothing
    returning id, mentee_id, mentor_id, score, reasons, started_at
),
events as (
    {assignment_events_sql("inserted")}
),
totals as (
    select count(*) as published, sum(i.score order by i.score desc, i.mentee_id) as total_fit,
           array_agg(distinct i.mentor_id) as mentors
      from inserted i
),
skipped as (
    select d.mentee_id, d.mentor_id, d.verdict as reason, 0 as late, d.fit
      from decided d where d.verdict is not null
    union all  -- refused by the unique index: cannot happen under the locks; kept honest
    select d.mentee_id, d.mentor_id, 'mentee_not_waiting', 1, d.fit
      from decided d where d.verdict is null
       and d.mentee_id not in (select i.mentee_id from inserted i)
)
select s.mentee_id, s.mentor_id, s.reason, t.published, t.total_fit, t.mentors
  from totals t left join skipped s on true
 order by s.late, s.fit desc, s.mentee_id
""").bindparams(bindparam("assigned_by", type_=UUID(as_uuid=True)),
                bindparam("excluded", type_=ID_LIST), bindparam("too_far", type_=ID_LIST))


async def _lock(session: AsyncSession, settings: Settings, run: MatchingRun) -> None:
    ms = str(int(settings.match_lock_timeout_seconds * 1000))
    await session.execute(text("select set_config('lock_timeout', :ms, true)"), {"ms": ms})
    try:
        await session.execute(text("select pg_advisory_xact_lock(:key)"),
                              {"key": MATCHER_LOCK_KEY})
        await session.execute(_LOCK_USERS, {"run_id": run.id})
    except DBAPIError as exc:
        if sqlstate_of(exc) == "55P03":
            raise Conflict("A matcher run or another publish holds the matcher; try again",
                           code="matching_in_progress") from exc
        raise
    await session.execute(text("select set_config('lock_timeout', '0', true)"))


async def _too_far(session: AsyncSession, run: MatchingRun, now: datetime) -> list[uuid.UUID]:
    """Mentees whose time-zone limit (as it is now) forbids their proposed mentor."""
    rows = (await session.execute(_LIMITED, {"run_id": run.id})).all()
    return [row.mentee_id for row in rows
            if gap_hours(offsets(row.mentee_zone, now), offsets(row.mentor_zone, now))
            > row.max_offset + 1e-9]


async def publish_run(session: AsyncSession, *, principal: Principal, settings: Settings,
                      job_id: str, exclude_mentee_ids: list[uuid.UUID]) -> dict[str, Any]:
    run = await get_matching_run(session, job_id=job_id, for_update=True)
    if not run.dry_run:
        raise Conflict("Only a dry run's proposals can be published; this run assigned "
                       "directly", code="not_a_dry_run")
    if run.published_at is not None:
        raise Conflict("This dry run was published already", code="already_published")
    if run.proposals_expired_at is not None:  # retention deleted them (or is deleting them)
        raise Conflict("This dry run's proposals expired; start a new dry run",
                       code="proposals_expired")
    if run.status != "done":
        raise Conflict(f"The dry run is {run.status}: nothing to publish",
                       code="run_not_finished")
    await _lock(session, settings, run)
    now = datetime.now(UTC)
    rows = (await session.execute(_PUBLISH, {
        "run_id": run.id, "now": now, "assigned_by": principal.user_id,
        "excluded": list(exclude_mentee_ids), "too_far": await _too_far(session, run, now),
    })).all()
    totals = rows[0]
    skipped = [{"mentee_id": str(row.mentee_id), "mentor_id": str(row.mentor_id),
                "reason": row.reason} for row in rows if row.mentee_id is not None]
    await check_capacity(session, totals.mentors or [])
    total_fit = round(totals.total_fit, 3) if totals.total_fit is not None else 0
    result = {"published": totals.published, "total_fit": total_fit, "skipped": skipped}
    await session.execute(update(MatchingRun).where(MatchingRun.id == run.id).values(
        published_at=now, published_by=principal.user_id, publish_result=result))
    return {"job_id": run.job_id, "published_at": now, **result}
