"""The mentor's work queue: listing (ordered by urgency, keyset-paginated) and status changes.

A mentor's items are those of their actively assigned mentees. RLS already restricts the
rows; every query here also filters by the caller's active assignments (defence in depth),
which is also what makes the plan index-friendly: assignments by (mentor_id) where active,
then work_items by (mentee_id, status).

Order: overdue first, then priority (urgent > high > normal > low), then `due_at`, then id.
"Overdue" depends on the clock, so a walk over pages pins its reference time (`as_of`) in the
cursor: every page orders and flags items as of the same instant and the keyset stays exact.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidTransition, NotFound, Unprocessable
from app.models import Assignment, User, WorkItem
from app.schemas.common import decode_cursor, encode_cursor
from app.schemas.work_queue import WorkItemPublic
from app.services.outbox import emit
from app.services.work_items import PRIORITY_ORDER

UNFINISHED = ("open", "in_progress")
# Allowed status changes; "done" is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "done"}),
    "in_progress": frozenset({"done"}),
    "done": frozenset(),
}
# Sort rank: urgent first.
PRIORITY_RANK = {p: rank for rank, p in enumerate(reversed(PRIORITY_ORDER))}


def my_active_mentees(mentor_id: uuid.UUID) -> Select:
    """Sub-select of the mentee ids actively assigned to `mentor_id`."""
    return select(Assignment.mentee_id).where(
        Assignment.mentor_id == mentor_id, Assignment.ended_at.is_(None)
    )


def overdue_expr(at: datetime):
    """Past the SLA as of `at`: unfinished and due before `at`, completed after `due_at`, or
    marked overdue by the SLA sweep."""
    now = literal(at, DateTime(timezone=True))
    return or_(WorkItem.overdue, WorkItem.due_at < func.coalesce(WorkItem.completed_at, now))


def _priority_rank():
    return case(*((WorkItem.priority == p, r) for p, r in PRIORITY_RANK.items()),
                else_=len(PRIORITY_RANK))


def to_public(item: WorkItem, *, mentee_name: str | None, at: datetime) -> WorkItemPublic:
    unfinished = item.status != "done"
    overdue = bool(item.overdue) or item.due_at < (item.completed_at or at)
    remaining = (math.floor((item.due_at - at).total_seconds() / 60) if unfinished else None)
    return WorkItemPublic(
        id=item.id, kind=item.kind, priority=item.priority, status=item.status,
        mentee_id=item.mentee_id, mentee_name=mentee_name, title=item.title,
        details=item.details or {}, due_at=item.due_at, overdue=overdue,
        sla_remaining_minutes=remaining, note=item.note, created_at=item.created_at,
        started_at=item.started_at, completed_at=item.completed_at,
        completed_by=item.completed_by,
    )


@dataclass(frozen=True, slots=True)
class WorkQueueFilters:
    status: tuple[str, ...] = UNFINISHED
    kind: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    overdue: bool | None = None
    mentee_id: uuid.UUID | None = None


def _decode(cursor: str | None) -> tuple[datetime, tuple[int, int, datetime, uuid.UUID]] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value["at"])
        o, p, due, item_id = value["k"]
        key = (int(o), int(p), datetime.fromisoformat(due), uuid.UUID(item_id))
    except (KeyError, TypeError, ValueError) as exc:
        raise Unprocessable("The cursor is not one this service issued",
                            code="invalid_cursor") from exc
    if at.tzinfo is None or key[2].tzinfo is None:
        raise Unprocessable("The cursor is not one this service issued", code="invalid_cursor")
    return at, key


async def list_work_queue(
    session: AsyncSession,
    *,
    mentor_id: uuid.UUID,
    filters: WorkQueueFilters,
    limit: int,
    cursor: str | None = None,
    now: datetime | None = None,
) -> tuple[list[WorkItemPublic], str | None, datetime]:
    """One page of the mentor's queue: (items, next cursor or None, as_of)."""
    decoded = _decode(cursor)
    at = decoded[0] if decoded else (now or datetime.now(UTC))
    overdue = overdue_expr(at)
    k_overdue = case((overdue, 0), else_=1)
    k_priority = _priority_rank()

    stmt = (
        select(WorkItem, User.name, k_overdue.label("k_overdue"),
               k_priority.label("k_priority"))
        .join(User, User.id == WorkItem.mentee_id)
        .where(WorkItem.mentee_id.in_(my_active_mentees(mentor_id)))
        .where(WorkItem.status.in_(filters.status))
    )
    if filters.kind:
        stmt = stmt.where(WorkItem.kind.in_(filters.kind))
    if filters.priority:
        stmt = stmt.where(WorkItem.priority.in_(filters.priority))
    if filters.overdue is not None:
        stmt = stmt.where(overdue if filters.overdue else not_(overdue))
    if filters.mentee_id is not None:
        stmt = stmt.where(WorkItem.mentee_id == filters.mentee_id)
    if decoded:
        o, p, due, item_id = decoded[1]
        stmt = stmt.where(
            tuple_(k_overdue, k_priority, WorkItem.due_at, WorkItem.id)
            > tuple_(literal(o, Integer), literal(p, Integer),
                     literal(due, DateTime(timezone=True)), literal(item_id, UUID(as_uuid=True)))
        )
    stmt = stmt.order_by(k_overdue, k_priority, WorkItem.due_at, WorkItem.id).limit(limit + 1)

    rows = (await session.execute(stmt)).all()
    page, more = rows[:limit], len(rows) > limit
    items = [to_public(row[0], mentee_name=row[1], at=at) for row in page]
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = encode_cursor({
            "at": at.isoformat(),
            "k": [last.k_overdue, last.k_priority, last[0].due_at.isoformat(), str(last[0].id)],
        })
    return items, next_cursor, at


async def _lock_item(
    session: AsyncSession, *, mentor_id: uuid.UUID, condition
) -> tuple[WorkItem, str | None] | None:
    row = (await session.execute(
        select(WorkItem, User.name)
        .join(User, User.id == WorkItem.mentee_id)
        .where(condition, WorkItem.mentee_id.in_(my_active_mentees(mentor_id)))
        .with_for_update(of=WorkItem)
    )).first()
    return (row[0], row[1]) if row else None


async def complete_item(
    session: AsyncSession, *, item: WorkItem, by: uuid.UUID, at: datetime,
    note: str | None = None,
) -> None:
    """Mark a locked, unfinished item done and emit `workqueue.item_completed` (to the
    mentor who completed it)."""
    item.status = "done"
    item.completed_at = at
    item.completed_by = by
    if note is not None:
        item.note = note
    await emit(
        session,
        type="workqueue.item_completed",
        data={
            "item_id": item.id, "kind": item.kind, "mentee_id": item.mentee_id,
            "completed_by": by, "completed_at": at, "due_at": item.due_at,
            "overdue": bool(item.overdue) or item.due_at < at,
        },
        recipients=[by],
        occurred_at=at,
    )


async def lock_item_by_source_key(
    session: AsyncSession, *, mentor_id: uuid.UUID, source_key: str
) -> WorkItem | None:
    found = await _lock_item(session, mentor_id=mentor_id,
                             condition=WorkItem.source_key == source_key)
    return found[0] if found else None


async def change_item_status(
    session: AsyncSession,
    *,
    mentor_id: uuid.UUID,
    item_id: uuid.UUID,
    status: str,
    note: str | None = None,
) -> WorkItemPublic:
    """open → in_progress → done, open → done. The row is locked, so two concurrent changes
    see each other's result (the second `done` is a 409, not a second completion)."""
    found = await _lock_item(session, mentor_id=mentor_id, condition=WorkItem.id == item_id)
    if found is None:
        raise NotFound("No such work item in your queue")
    item, mentee_name = found
    if status not in TRANSITIONS[item.status]:
        raise InvalidTransition(f"A work item cannot go from {item.status} to {status}",
                                current_status=item.status)
    at = datetime.now(UTC)
    if status == "done":
        await complete_item(session, item=item, by=mentor_id, at=at, note=note)
    else:
        item.status = status
        item.started_at = at
        if note is not None:
            item.note = note
    await session.flush()
    return to_public(item, mentee_name=mentee_name, at=at)

