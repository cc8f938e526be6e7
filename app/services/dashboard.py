"""The mentor's dashboard: work queue counts, today's sessions, at-risk mentees, capacity.

A constant number of statements whatever the number of mentees (the mentor's row, the
capacity load, one aggregate over the work queue, today's sessions, one set-based risk
query). The SSE stream sends the same body as its `snapshot` event: call
`build_dashboard`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models import User
from app.models.work_item import PRIORITIES, WORK_ITEM_KINDS
from app.schemas.dashboard import (
    AtRiskMentee,
    CapacitySummary,
    DashboardPublic,
    TodaySession,
    WorkqueueSummary,
)
from app.services.capacity import iso_week_label, mentor_loads, mentor_zone
from app.services.risk import MENTOR_RISK_SQL

DUE_SOON = timedelta(hours=24)

# Unfinished items about the mentor's active mentees. The explicit mentor filter repeats
# what RLS already enforces (defence in depth). GROUPING SETS gives the totals, the
# per-kind and the per-priority counts in one scan.
_WORKQUEUE = text("""
    select w.kind, w.priority, grouping(w.kind) as all_kinds, grouping(w.priority) as all_prio,
           count(*) as total,
           count(*) filter (where w.status = 'in_progress') as in_progress,
           count(*) filter (where w.due_at < :now) as overdue,
           count(*) filter (where w.due_at >= :now and w.due_at < :soon) as due_24h
      from work_items w
     where w.status <> 'done'
       and w.mentee_id in (select a.mentee_id from assignments a
                            where a.mentor_id = :mentor_id and a.ended_at is null)
     group by grouping sets ((), (w.kind), (w.priority))
""")

_TODAY = text("""
    select s.id, s.mentor_id, s.mentee_id, s.starts_at, s.ends_at, s.duration_minutes,
           s.status, s.meeting_url, s.agenda, u.name as mentee_name
      from sessions s
      join users u on u.id = s.mentee_id
     where s.mentor_id = :mentor_id and s.status <> 'cancelled'
       and s.starts_at >= :start and s.starts_at < :end
     order by s.starts_at, s.id
""")

_AT_RISK = text(f"""
    select risk.mentee_id, risk.reasons, risk.risk_score, u.name
      from ({MENTOR_RISK_SQL}) risk
      join users u on u.id = risk.mentee_id
     where cardinality(risk.reasons) > 0
     order by risk.risk_score desc, u.name, risk.mentee_id
""")


def day_bounds(zone, at: datetime) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) of the day containing `at` in `zone`; a DST
    day is 23 or 25 hours long."""
    local = at.astimezone(zone).date()
    following = local + timedelta(days=1)
    return (datetime(local.year, local.month, local.day, tzinfo=zone),
            datetime(following.year, following.month, following.day, tzinfo=zone))


async def _workqueue(session: AsyncSession, *, mentor_id: uuid.UUID,
                     now: datetime) -> WorkqueueSummary:
    rows = (await session.execute(
        _WORKQUEUE, {"mentor_id": mentor_id, "now": now, "soon": now + DUE_SOON})).all()
    by_kind = dict.fromkeys(WORK_ITEM_KINDS, 0)
    by_priority = dict.fromkeys(PRIORITIES, 0)
    totals = {"open": 0, "in_progress": 0, "overdue": 0, "due_24h": 0}
    for row in rows:
        if row.all_kinds and row.all_prio:  # the grand total
            totals = {"open": row.total, "in_progress": row.in_progress,
                      "overdue": row.overdue, "due_24h": row.due_24h}
        elif not row.all_kinds:
            by_kind[row.kind] = row.total
        else:
            by_priority[row.priority] = row.total
    return WorkqueueSummary(**totals, by_kind=by_kind, by_priority=by_priority)


async def build_dashboard(
    session: AsyncSession, *, mentor_id: uuid.UUID, now: datetime
) -> DashboardPublic:
    mentor = await session.scalar(select(User).where(User.id == mentor_id))
    if mentor is None:
        raise NotFound("No mentor profile for this user", code="mentor_not_found")
    zone = mentor_zone(mentor)

    load = (await mentor_loads(session, mentor_ids=[mentor_id], at=now))[mentor_id]
    workqueue = await _workqueue(session, mentor_id=mentor_id, now=now)

    start, end = day_bounds(zone, now)
    today = (await session.execute(
        _TODAY, {"mentor_id": mentor_id, "start": start, "end": end})).mappings()
    today_sessions = [TodaySession.model_validate(dict(row)) for row in today]

    at_risk = (await session.execute(_AT_RISK, {"mentor_id": mentor_id, "now": now})).all()
    at_risk_mentees = [
        AtRiskMentee(mentee_id=row.mentee_id, name=row.name, reasons=row.reasons,
                     risk_score=row.risk_score)
        for row in at_risk
    ]

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
    return DashboardPublic(workqueue=workqueue, today_sessions=today_sessions,
                           at_risk_mentees=at_risk_mentees, capacity=capacity,
                           generated_at=now)
