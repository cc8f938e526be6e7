"""Asking for the outcome of a session nobody closed.

A session still `scheduled` two hours after its end opens one `session_followup` item
(source_key `session.followup:<id>`) asking the mentor for its outcome. The moment is a
`followup` timer armed by the database (migration 0015: a trigger on `sessions`, so every
path that books or moves a session arms it, and sessions that had ended before the
migration never get one: the first sweep does not flood the queues). The sweep claims due
timers with the session rows (FOR UPDATE ... SKIP LOCKED): a mentor completing the
session at that moment holds the row and the sweep leaves it for the next run, by which
time completion has removed the timer. Completing the session afterwards closes the item
the sweep opened instead of opening a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.models import MentoringSession
from app.services.workqueue.items import NewWorkItem, create_work_item, create_work_items
from app.services.workqueue.queue import complete_item, lock_item_by_source_key

FOLLOWUP_AFTER = timedelta(hours=2)  # mirrored by the trigger of migration 0015


def sweep_key(session_id) -> str:
    return f"session.followup:{session_id}"


def completion_key(session_id) -> str:
    return f"session.completed:{session_id}"


async def close_or_open_followup(session: AsyncSession, *, settings: Settings,
                                 row: MentoringSession, actor: Principal,
                                 now: datetime) -> None:
    """After the mentor completed (or marked no-show) `row`."""
    asked = await lock_item_by_source_key(session, mentor_id=actor.user_id,
                                          source_key=sweep_key(row.id))
    if asked is not None:
        if asked.status != "done":
            await complete_item(session, item=asked, by=actor.user_id, at=now,
                                note=f"Session marked {row.status}")
        return
    title = ("Follow up on the session" if row.status == "completed"
             else "Reach out after the missed session")
    await create_work_item(
        session, settings=settings, kind="session_followup", mentee_id=row.mentee_id,
        source_key=completion_key(row.id), title=title,
        details={"session_id": str(row.id), "status": row.status,
                 "starts_at": row.starts_at.isoformat()},
        created_at=now,
    )


_CLAIM = text("""
    select t.session_id, s.mentee_id, s.starts_at, s.ends_at, s.status
      from session_timers t
      join sessions s on s.id = t.session_id
     where t.kind = 'followup' and t.done_at is null and t.due_at <= :now
     order by t.due_at
     limit :batch
       for update of t, s skip locked
""")
_DONE = text("""
    update session_timers set done_at = :now
     where kind = 'followup' and session_id = any(:ids)
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


@dataclass(frozen=True, slots=True)
class FollowupSweep:
    claimed: int
    opened: int


async def sweep_followups(session: AsyncSession, *, settings: Settings, now: datetime,
                          batch: int = 500) -> FollowupSweep:
    """One batch of due follow-up timers, on the workers' engine (the system)."""
    rows = (await session.execute(_CLAIM, {"now": now, "batch": batch})).all()
    if not rows:
        return FollowupSweep(0, 0)
    items = [
        NewWorkItem(
            kind="session_followup", mentee_id=r.mentee_id, source_key=sweep_key(r.session_id),
            title="Record the outcome of the session",
            details={"session_id": str(r.session_id), "status": r.status,
                     "starts_at": r.starts_at.isoformat(), "ends_at": r.ends_at.isoformat()},
            created_at=now,
        )
        for r in rows if r.status == "scheduled"
    ]
    created = await create_work_items(session, settings=settings, items=items)
    await session.execute(_DONE, {"now": now, "ids": [r.session_id for r in rows]})
    return FollowupSweep(claimed=len(rows), opened=len(created))
