"""The SLA prioritizer: one set-based statement, run by a cron job every 5 minutes.

For every unfinished work item:
* past `due_at`: `overdue = true`, and a `workqueue.item_overdue` event for the items that
  became overdue in this sweep (to the mentee's active mentor);
* once 75 % of its SLA window (`created_at` -> `due_at`) has passed: the priority goes up
  one step (low -> normal -> high -> urgent, urgent stays urgent), once: `escalated_at`
  records that the step was taken, so a later sweep never raises it again.

All of it is one statement (CTEs: lock the rows to change, UPDATE ... RETURNING, INSERT the
events from the returned rows), so the changes and their events commit together, and a
second sweep finds nothing left to do: running it twice emits nothing new. Rows another
transaction holds (a mentor completing the item right now, or an overlapping sweep) are
skipped and picked up by the next sweep, which is where they belong anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.outbox import insert_events_sql, sql_rfc3339

ESCALATE_AT = 0.75  # share of the SLA window after which the priority goes up one step

_SWEEP = text(f"""
with due as (
    select w.id,
           (not w.overdue and w.due_at <= :now) as becomes_overdue,
           (w.escalated_at is null
            and w.created_at + (w.due_at - w.created_at) * {ESCALATE_AT} <= :now) as escalate
      from work_items w
     where w.status <> 'done'
       and ((not w.overdue and w.due_at <= :now)
            or (w.escalated_at is null
                and w.created_at + (w.due_at - w.created_at) * {ESCALATE_AT} <= :now))
       for no key update skip locked
),
changed as (
    update work_items w
       set overdue = w.overdue or d.becomes_overdue,
           priority = case when not d.escalate then w.priority
                           when w.priority = 'low' then 'normal'
                           when w.priority = 'normal' then 'high'
                           else 'urgent' end,
           escalated_at = case when d.escalate then :now else w.escalated_at end,
           updated_at = :now
      from due d
     where w.id = d.id
 returning w.id, w.kind, w.priority, w.mentee_id, w.due_at, w.title,
           d.becomes_overdue, d.escalate
),
events as (
    {insert_events_sql(
        type="workqueue.item_overdue",
        data=f'''jsonb_build_object(
            'item_id', c.id, 'kind', c.kind, 'priority', c.priority,
            'mentee_id', c.mentee_id, 'due_at', {sql_rfc3339("c.due_at")},
            'title', c.title, 'overdue', true)''',
        recipients='''array(select a.mentor_id from assignments a
                             where a.mentee_id = c.mentee_id and a.ended_at is null)''',
        source="changed c where c.becomes_overdue",
    )}
    returning 1
)
select (select count(*) from changed where escalate) as escalated,
       (select count(*) from changed where becomes_overdue) as overdue,
       (select count(*) from events) as events
""")


@dataclass(frozen=True, slots=True)
class SweepResult:
    escalated: int
    overdue: int  # newly overdue, one event each
    events: int


async def sweep_work_queue(session: AsyncSession, *, now: datetime | None = None) -> SweepResult:
    """Mark overdue, escalate and emit, in the caller's transaction (the workers' system
    engine: RLS would hide other mentors' items)."""
    row = (await session.execute(_SWEEP, {"now": now or datetime.now(UTC)})).one()
    return SweepResult(escalated=row.escalated, overdue=row.overdue, events=row.events)
