"""The SLA prioritizer: one set-based statement, run by a cron job every 5 minutes.

For every unfinished work item:
* past `due_at`: `overdue = true`, and a `workqueue.item_overdue` event for the items that
  became overdue in this sweep (to the mentee's active mentor);
* once 75 % of its SLA window (`created_at` -> `due_at`) has passed: the priority goes up
  one step (low -> normal -> high -> urgent, urgent stays urgent), once: `escalated_at`
  records that the step was taken, so a later sweep never raises it again; a
  `workqueue.item_escalated` event (with the new priority) goes to the mentee's mentor.

A batch is one statement (CTEs: lock the rows to change, UPDATE ... RETURNING, INSERT the
events from the returned rows), so the changes and their events commit together, and a
second sweep finds nothing left to do: running it twice emits nothing new. Rows another
transaction holds (a mentor completing the item right now, or an overlapping sweep) are
skipped and picked up by the next sweep, which is where they belong anyway.

The rows to change come from one partial expression index (migration 0007) holding only
items with a step pending, keyed by when that step is due, so a regular sweep costs
milliseconds however many items exist. After a long outage the backlog is worked through
in batches (`sla_sweep_batch_size` rows, oldest step first), one transaction each, so no
sweep holds thousands of row locks for long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.db import Database
from app.core.outbox import insert_events_sql, sql_rfc3339
from app.models.work_item import ESCALATION_INSTANT, NEXT_SLA_STEP, PENDING_SLA_STEP


def _on(alias: str, sql: str) -> str:
    """Qualify the model's column names with a table alias."""
    for column in ("created_at", "due_at", "escalated_at", "overdue", "status"):
        sql = re.sub(rf"(?<![.\w]){column}\b", f"{alias}.{column}", sql)
    return sql


NOW_UTC = "(cast(:now as timestamptz) at time zone 'UTC')"
BECOMES_OVERDUE = "(not w.overdue and w.due_at <= :now)"
ESCALATE = f"(w.escalated_at is null and {_on('w', ESCALATION_INSTANT)} <= {NOW_UTC})"

_SWEEP = text(f"""
with due as (
    -- A range scan of ix_work_items_sla_next_step (migration 0007); on a row another
    -- transaction changed meanwhile the condition is checked again once it is locked.
    select w.id, {BECOMES_OVERDUE} as becomes_overdue, {ESCALATE} as escalate
      from work_items w
     where {_on('w', PENDING_SLA_STEP)}
       and {_on('w', NEXT_SLA_STEP)} <= {NOW_UTC}
     order by {_on('w', NEXT_SLA_STEP)}
     limit :batch
       for no key update of w skip locked
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
     -- `= any(array(...))`: an index lookup per row, whatever the estimates say.
     where w.id = d.id and w.id = any(array(select id from due))
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
),
escalations as (
    {insert_events_sql(
        type="workqueue.item_escalated",
        data=f'''jsonb_build_object(
            'item_id', c.id, 'kind', c.kind, 'priority', c.priority,
            'mentee_id', c.mentee_id, 'due_at', {sql_rfc3339("c.due_at")},
            'title', c.title, 'escalated_at', {sql_rfc3339("cast(:now as timestamptz)")})''',
        recipients='''array(select a.mentor_id from assignments a
                             where a.mentee_id = c.mentee_id and a.ended_at is null)''',
        source="changed c where c.escalate",
    )}
    returning 1
)
select (select count(*) from changed) as changed,
       (select count(*) from changed where escalate) as escalated,
       (select count(*) from changed where becomes_overdue) as overdue,
       (select count(*) from events) + (select count(*) from escalations) as events
""")


@dataclass(frozen=True, slots=True)
class SweepResult:
    changed: int = 0  # items updated
    escalated: int = 0
    overdue: int = 0  # newly overdue, one event each
    events: int = 0  # item_overdue + item_escalated events
    batches: int = 0

    def __add__(self, other: SweepResult) -> SweepResult:
        return SweepResult(self.changed + other.changed, self.escalated + other.escalated,
                           self.overdue + other.overdue, self.events + other.events,
                           self.batches + other.batches)


async def sweep_batch(session: AsyncSession, *, now: datetime, batch: int) -> SweepResult:
    """One batch of the sweep, in the caller's transaction (on the workers' system engine:
    RLS would hide other mentors' items)."""
    row = (await session.execute(_SWEEP, {"now": now, "batch": batch})).one()
    return SweepResult(changed=row.changed, escalated=row.escalated, overdue=row.overdue,
                       events=row.events, batches=1)


async def sweep_work_queue(database: Database, *, settings: Settings,
                           now: datetime | None = None) -> SweepResult:
    """The whole sweep: batches, each in its own transaction, until one comes back short
    (a changed row never qualifies again for the same `now`, so this ends)."""
    at = now or datetime.now(UTC)
    total = SweepResult()
    while True:
        async with database.transaction(None) as session:
            result = await sweep_batch(session, now=at, batch=settings.sla_sweep_batch_size)
        total += result
        if result.changed < settings.sla_sweep_batch_size:
            return total
