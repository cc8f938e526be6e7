"""The mentor's dashboard: work queue counts, today's sessions, at-risk mentees, capacity.

One read whatever the number of mentees (after the transaction's RLS settings; on the driver
connection, app/core/sql.py): the mentor's zone, the capacity load (the SQL of
`capacity.mentor_loads`), the work queue counts, today's sessions and the set-based risk
of every mentee, each part a sub-select below, the lists aggregated to JSON by Postgres.
One round trip instead of five is much of the cost difference at this request rate (see
bench/dashboard_bench.py).
The SSE stream sends the same body as its `snapshot` event: call `build_dashboard`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.sql import DriverQuery
from app.models.work_item import PRIORITIES, WORK_ITEM_KINDS
from app.schemas.dashboard import (
    AtRiskMentee,
    CapacitySummary,
    DashboardPublic,
    TodaySession,
    WorkqueueSummary,
)
from app.services.mentors.capacity import (
    MENTOR_LOADS_SQL,
    MENTOR_ZONE_SQL,
    MentorLoad,
    iso_week_label,
    safe_zone,
)
from app.services.risk.scoring import MENTOR_RISK_SQL

DUE_SOON = timedelta(hours=24)

# Unfinished items about the mentor's active mentees (the explicit mentor filter repeats
# what RLS enforces: defence in depth). GROUPING SETS gives the totals, the per-kind and
# the per-priority counts in one scan.
_WORKQUEUE_SQL = """
    select w.kind, w.priority, grouping(w.kind) as all_kinds, grouping(w.priority) as all_prio,
           count(*) as total,
           count(*) filter (where w.status = 'in_progress') as in_progress,
           count(*) filter (where w.overdue or w.due_at < :now) as overdue,
           count(*) filter (where not w.overdue and w.due_at >= :now and w.due_at < :soon)
             as due_24h
      from work_items w
     where w.status <> 'done'
       and w.mentee_id in (select a.mentee_id from assignments a
                            where a.mentor_id = :mentor_id and a.ended_at is null)
     group by grouping sets ((), (w.kind), (w.priority))
"""

# Live sessions starting between local midnight and the next local midnight in the
# mentor's zone (`timestamp + 1 day` on the local clock, so a DST day is 23 or 25 hours).
# The bounds are scalar sub-selects so they become index conditions.
_TODAY_SQL = """
    select s.id, s.mentor_id, s.mentee_id, s.starts_at, s.ends_at, s.duration_minutes,
           s.status, s.meeting_url, s.agenda, s.cancel_reason, s.sequence, s.created_at,
           s.updated_at, u.name as mentee_name
      from sessions s
      join users u on u.id = s.mentee_id
     where s.mentor_id = :mentor_id and s.status <> 'cancelled'
       and s.starts_at >= (select day_start from me) and s.starts_at < (select day_end from me)
"""

_AT_RISK_SQL = f"""
    select risk.mentee_id, u.name, risk.reasons, risk.risk_score
      from ({MENTOR_RISK_SQL}) risk
      join users u on u.id = risk.mentee_id
     where cardinality(risk.reasons) > 0
"""

# `array[:mentor_id]` rather than a bound uuid[]: with an array parameter Postgres keeps
# re-planning the statement at every execution (~5-8 ms) instead of settling on the
# prepared statement's generic plan.
_LOAD_SQL = MENTOR_LOADS_SQL.replace(":mentor_ids", "array[cast(:mentor_id as uuid)]")

_DASHBOARD = text(f"""
    with load as ({_LOAD_SQL}),
    tz as (select {MENTOR_ZONE_SQL} as zone from users u where u.id = :mentor_id),
    me as (
      select zone,
             date_trunc('day', :now at time zone zone) at time zone zone as day_start,
             (date_trunc('day', :now at time zone zone) + interval '1 day') at time zone zone
               as day_end
        from tz
    )
    select me.zone, load.weekly_slots_used, load.weekly_slots_total, load.mentees_active,
           load.mentees_max,
           (select coalesce(json_agg(q), '[]') from ({_WORKQUEUE_SQL}) q) as workqueue,
           (select coalesce(json_agg(t order by t.starts_at, t.id), '[]')
              from ({_TODAY_SQL}) t) as today,
           (select coalesce(json_agg(r order by r.risk_score desc, r.name, r.mentee_id), '[]')
              from ({_AT_RISK_SQL}) r) as at_risk
      from me cross join load
""")
_DASHBOARD_QUERY = DriverQuery(_DASHBOARD)


def _workqueue(rows: list[dict]) -> WorkqueueSummary:
    by_kind = dict.fromkeys(WORK_ITEM_KINDS, 0)
    by_priority = dict.fromkeys(PRIORITIES, 0)
    totals = {"open": 0, "in_progress": 0, "overdue": 0, "due_24h": 0}
    for row in rows:
        if row["all_kinds"] and row["all_prio"]:  # the grand total
            totals = {"open": row["total"], "in_progress": row["in_progress"],
                      "overdue": row["overdue"], "due_24h": row["due_24h"]}
        elif not row["all_kinds"]:
            by_kind[row["kind"]] = row["total"]
        else:
            by_priority[row["priority"]] = row["total"]
    return WorkqueueSummary(**totals, by_kind=by_kind, by_priority=by_priority)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


async def build_dashboard(
    session: AsyncSession, *, mentor_id: uuid.UUID, now: datetime
) -> DashboardPublic:
    row = await _DASHBOARD_QUERY.fetchrow(session, {
        "mentor_id": mentor_id, "at": now, "now": now,
        "soon": now + DUE_SOON,
    })
    if row is None:
        raise NotFound("No mentor profile for this user", code="mentor_not_found")
    load = MentorLoad(mentor_id, row["weekly_slots_used"], row["weekly_slots_total"],
                      row["mentees_active"], row["mentees_max"])
    zone = safe_zone(row["zone"])
    capacity = CapacitySummary(
        weekly_slots_used=load.weekly_slots_used,
        weekly_slots_total=load.weekly_slots_total,
        mentees_active=load.mentees_active,
        mentees_max=load.mentees_max,
        utilization=round(load.utilization, 4),
        label=f"{load.weekly_slots_used}/{load.weekly_slots_total} weekly slots",
        mentees_label=f"{load.mentees_active}/{load.mentees_max} mentees",
        iso_week=iso_week_label(zone, now),
        timezone=zone.key,
    )
    return DashboardPublic(
        workqueue=_workqueue(_json(row["workqueue"])),
        today_sessions=[TodaySession.model_validate(s) for s in _json(row["today"])],
        at_risk_mentees=[AtRiskMentee.model_validate(r) for r in _json(row["at_risk"])],
        capacity=capacity,
        generated_at=now,
    )
