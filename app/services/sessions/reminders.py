"""`session.reminder`: 24 hours and 60 minutes before a session, to its mentor and mentee,
once per session and reminder.

The moments are `reminder:1440` / `reminder:60` timers armed by the database (migration
0015): a booking arms the ones still ahead (booked 3 hours ahead: only the 60-minute one),
a reschedule re-arms both for the new time, leaving `scheduled` removes them.
A worker claims due timers with FOR UPDATE ... SKIP LOCKED, writes the events to the
outbox and marks the timers done in one transaction: several workers never claim the same
row, and a worker that dies before committing leaves its rows to the next run. A reminder
whose moment passed while no worker ran is still sent while the session has not started;
after that it is marked done without an event (a late "starts in an hour" is noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.outbox import emit

_CLAIM = text("""
    select t.session_id, t.kind, t.due_at, s.mentor_id, s.mentee_id, s.starts_at, s.ends_at,
           s.duration_minutes, s.meeting_url, s.sequence, s.status
      from session_timers t
      join sessions s on s.id = t.session_id
     where t.kind like 'reminder:%' and t.done_at is null and t.due_at <= :now
     order by t.due_at
     limit :batch
       for update of t skip locked
""")
_DONE = text("""
    update session_timers t set done_at = :now
      from unnest(:ids, :kinds) as d(session_id, kind)
     where t.session_id = d.session_id and t.kind = d.kind
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
                bindparam("kinds", type_=ARRAY(Text())))


@dataclass(frozen=True, slots=True)
class ReminderRun:
    claimed: int
    sent: int


async def send_due_reminders(session: AsyncSession, *, now: datetime,
                             batch: int = 500) -> ReminderRun:
    """One batch of due reminders, on the workers' engine (the system)."""
    rows = (await session.execute(_CLAIM, {"now": now, "batch": batch})).all()
    sent = 0
    for row in rows:
        if row.status != "scheduled" or row.starts_at <= now:
            continue  # started (or no longer live): too late to remind
        await emit(session, type="session.reminder", recipients=[row.mentor_id, row.mentee_id],
                   occurred_at=now, data={
                       "session_id": row.session_id, "mentor_id": row.mentor_id,
                       "mentee_id": row.mentee_id, "starts_at": row.starts_at,
                       "ends_at": row.ends_at, "duration_minutes": row.duration_minutes,
                       "meeting_url": row.meeting_url, "sequence": row.sequence,
                       "minutes_before": int(row.kind.split(":")[1]),
                       "due_at": row.due_at,
                   })
        sent += 1
    if rows:
        await session.execute(_DONE, {"now": now, "ids": [r.session_id for r in rows],
                                      "kinds": [r.kind for r in rows]})
    return ReminderRun(claimed=len(rows), sent=sent)
