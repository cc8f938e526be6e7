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

The rest are inserted with their `assignment.created` events (one statement), and the run
records what was published and what was skipped; publishing again is 409
`already_published`. NumPy-free: the API process runs it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.dberrors import sqlstate_of
from app.core.errors import Conflict
from app.models import MatchingRun
from app.services.matching.runs import get_matching_run
from app.services.matching.writes import MATCHER_LOCK_KEY, insert_assignments
from app.services.matching.zones import gap_hours, offsets
from app.services.mentors.capacity import MENTOR_ZONE_SQL

# Each lookup is by primary key or a partial index, row by row, so the plan stays good when
# the planner has no statistics yet for a run's proposals (a fresh table, a new run id: it
# then expects a handful of rows, and a join to an aggregate would be rescanned per row).
_PROPOSALS = text(f"""
select p.mentee_id, p.mentor_id, p.fit, p.reasons,
       coalesce(me.role = 'mentee' and not me.is_mentor and me.active, false) as is_mentee,
       me.timezone as mentee_zone, pr.max_timezone_offset_hours as max_offset,
       exists (select 1 from assignments a
                where a.mentee_id = p.mentee_id and a.ended_at is null) as assigned,
       coalesce(u.is_mentor and u.active, false) as is_mentor,
       {MENTOR_ZONE_SQL} as mentor_zone, u.mentor_max_mentees
  from matching_proposals p
  left join users me on me.id = p.mentee_id
  left join mentee_preferences pr on pr.mentee_id = p.mentee_id
  left join users u on u.id = p.mentor_id
 where p.run_id = :run_id
 order by p.fit desc, p.mentee_id
""")

# Active mentees of the run's mentors (one small aggregate, joined in Python).
_LOADS = text("""
    select a.mentor_id, count(*) as active from assignments a
     where a.ended_at is null
       and a.mentor_id in (select distinct mentor_id from matching_proposals
                            where run_id = :run_id)
     group by a.mentor_id
""")

# The run's mentors and mentees, in id order (as a director's assignment locks them), in one
# statement: the ids never leave the database.
_LOCK_USERS = text("""
    select id from users
     where id in (select mentee_id from matching_proposals where run_id = :run_id
                  union all
                  select mentor_id from matching_proposals where run_id = :run_id)
     order by id for no key update
""")


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


def _checked(rows: list[Any], loads: dict[uuid.UUID, int], excluded: set[uuid.UUID],
             now: datetime) -> tuple[list[Any], list[dict[str, Any]]]:
    """(proposals to publish, skipped with reasons); `rows` come best fit first, `loads`
    are the mentors' active mentees."""
    keep: list[Any] = []
    skipped: list[dict[str, Any]] = []
    taken: dict[uuid.UUID, int] = defaultdict(int)
    for row in rows:
        reason = None
        if row.mentee_id in excluded:
            reason = "excluded"
        elif not row.is_mentee:
            reason = "not_a_mentee"
        elif row.assigned:
            reason = "mentee_not_waiting"
        elif not row.is_mentor:
            reason = "not_a_mentor"
        elif row.max_offset is not None and gap_hours(
                offsets(row.mentee_zone, now), offsets(row.mentor_zone, now)
        ) > row.max_offset + 1e-9:
            reason = "max_timezone_offset_hours"
        elif loads.get(row.mentor_id, 0) + taken[row.mentor_id] >= row.mentor_max_mentees:
            reason = "mentor_full"
        if reason is None:
            taken[row.mentor_id] += 1
            keep.append(row)
        else:
            skipped.append({"mentee_id": str(row.mentee_id), "mentor_id": str(row.mentor_id),
                            "reason": reason})
    return keep, skipped


async def publish_run(session: AsyncSession, *, principal: Principal, settings: Settings,
                      job_id: str, exclude_mentee_ids: list[uuid.UUID]) -> dict[str, Any]:
    run = await get_matching_run(session, job_id=job_id, for_update=True)
    if not run.dry_run:
        raise Conflict("Only a dry run's proposals can be published; this run assigned "
                       "directly", code="not_a_dry_run")
    if run.published_at is not None:
        raise Conflict("This dry run was published already", code="already_published")
    if run.status != "done":
        raise Conflict(f"The dry run is {run.status}: nothing to publish",
                       code="run_not_finished")
    await _lock(session, settings, run)
    now = datetime.now(UTC)
    rows = list((await session.execute(_PROPOSALS, {"run_id": run.id})).all())
    loads = dict((await session.execute(_LOADS, {"run_id": run.id})).tuples().all())
    keep, skipped = _checked(rows, loads, set(exclude_mentee_ids), now)
    inserted = await insert_assignments(
        session, at=now, mentee_ids=[r.mentee_id for r in keep],
        mentor_ids=[r.mentor_id for r in keep], scores=[r.fit for r in keep],
        reasons=[r.reasons for r in keep], assigned_by=principal.user_id)
    for row in keep:
        if row.mentee_id not in inserted:  # cannot happen under the locks; kept honest
            skipped.append({"mentee_id": str(row.mentee_id), "mentor_id": str(row.mentor_id),
                            "reason": "mentee_not_waiting"})
    total_fit = round(sum(r.fit for r in keep if r.mentee_id in inserted), 3)
    result = {"published": len(inserted), "total_fit": total_fit, "skipped": skipped}
    await session.execute(update(MatchingRun).where(MatchingRun.id == run.id).values(
        published_at=now, published_by=principal.user_id, publish_result=result))
    return {"job_id": run.job_id, "published_at": now, **result}
