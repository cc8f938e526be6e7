"""The capacity checker: `capacity.exceeded`, once per mentor per ISO week.

A mentor's capacity is exceeded when either
* the weekly slots are full: `weekly_slots_used >= weekly_slots_total` with at least one
  session that week (booking refuses any further session this week; a mentor with 0 weekly
  slots and no sessions is deliberately unavailable, not full), or
* they have more active mentees than their maximum: `mentees_active > mentees_max` (the
  maximum was lowered below the current load; merely reaching the maximum is normal and
  the matcher already stops there).

"This week" is the ISO week in the mentor's own time zone (`app/services/mentors/capacity.py`; a
zone name Postgres does not know counts as UTC, so one bad row cannot stop the check).
One statement computes every mentor's load, records an alert in `capacity_alerts` (primary
key: mentor and ISO week; INSERT ... ON CONFLICT DO NOTHING RETURNING) and writes the
events for the alerts it created only, so the hourly cron and the check after each booking
raise the event once per mentor per week, however often they run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.outbox import insert_events_sql
from app.services.mentors.capacity import MENTOR_ZONE_SQL, loads_select


def _check_sql(where: str) -> str:
    return f"""
-- A zone name Postgres does not know (bad data) counts as UTC rather than failing the check
-- of every mentor; the zone list is read once.
with zones as materialized (select name from pg_timezone_names),
mentor_zones as materialized (
    select u.id, coalesce(z.name, 'UTC') as zone
      from users u left join zones z on z.name = {MENTOR_ZONE_SQL}
     where {where}
),
loads as ({loads_select(where, zone="mz.zone",
                        source="users u join mentor_zones mz on mz.id = u.id")}),
exceeded as (
    select l.*,
           to_char(:at at time zone l.zone, 'IYYY-"W"IW') as iso_week,
           array_remove(array[
               case when l.weekly_slots_used >= l.weekly_slots_total
                         and l.weekly_slots_used > 0 then 'weekly_slots_full' end,
               case when l.mentees_active > l.mentees_max then 'mentees_over_max' end
           ], null) as reasons
      from loads l
     where (l.weekly_slots_used >= l.weekly_slots_total and l.weekly_slots_used > 0)
        or l.mentees_active > l.mentees_max
),
alerts as (
    insert into capacity_alerts (mentor_id, iso_week, weekly_slots_used, weekly_slots_total,
                                 mentees_active, mentees_max, created_at)
    select mentor_id, iso_week, weekly_slots_used, weekly_slots_total, mentees_active,
           mentees_max, :now
      from exceeded
        on conflict (mentor_id, iso_week) do nothing
    returning mentor_id, iso_week
),
directors as (
    select coalesce(array_agg(u.id order by u.id), '{{}}') as ids
      from users u where u.role = 'director'
),
events as (
    {insert_events_sql(
        type="capacity.exceeded",
        data='''jsonb_build_object(
            'mentor_id', e.mentor_id, 'iso_week', e.iso_week,
            'weekly_slots_used', e.weekly_slots_used,
            'weekly_slots_total', e.weekly_slots_total,
            'mentees_active', e.mentees_active, 'mentees_max', e.mentees_max,
            'utilization', case when e.weekly_slots_total > 0
                                then round(e.weekly_slots_used::numeric
                                           / e.weekly_slots_total, 4)::float8
                                else 0 end,
            'reasons', to_jsonb(e.reasons))''',
        recipients="array[e.mentor_id] || array_remove(d.ids, e.mentor_id)",
        source="alerts a join exceeded e using (mentor_id, iso_week) cross join directors d",
    )}
    returning 1
)
select (select count(*) from loads) as mentors,
       (select count(*) from exceeded) as exceeded,
       (select count(*) from events) as alerts
"""


_CHECK_ALL = text(_check_sql("u.is_mentor"))
_CHECK_ONE = text(_check_sql("u.is_mentor and u.id = :mentor_id"))


@dataclass(frozen=True, slots=True)
class CapacityCheck:
    mentors: int  # mentors checked
    exceeded: int  # of which over capacity this week
    alerts: int  # newly raised (one `capacity.exceeded` each)


async def check_capacity(session: AsyncSession, *, at: datetime | None = None,
                         mentor_id: uuid.UUID | None = None) -> CapacityCheck:
    """Check every mentor (or one, after a booking) for the ISO week containing `at`
    (default now), in the caller's transaction on the workers' system engine."""
    now = datetime.now(UTC)
    params = {"at": at or now, "now": now}
    if mentor_id is not None:
        row = (await session.execute(_CHECK_ONE, {**params, "mentor_id": mentor_id})).one()
    else:
        row = (await session.execute(_CHECK_ALL, params)).one()
    return CapacityCheck(mentors=row.mentors, exceeded=row.exceeded, alerts=row.alerts)
