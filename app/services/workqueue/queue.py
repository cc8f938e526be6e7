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

import functools
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field
from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app.core.errors import InvalidTransition, NotFound
from app.core.instants import BoundedDatetime
from app.core.outbox import emit
from app.core.pagination import Keyset
from app.core.sql import DriverQuery
from app.models import Assignment, User, WorkItem
from app.schemas.workqueue import WorkItemPublic
from app.services.workqueue.items import PRIORITY_ORDER

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


def overdue_expr(at):
    """Past the SLA as of `at` (a datetime or a bind parameter): unfinished and due before
    `at`, completed after `due_at`, or marked overdue by the SLA sweep."""
    now = at if isinstance(at, BindParameter) else literal(at, DateTime(timezone=True))
    return or_(WorkItem.overdue, WorkItem.due_at < func.coalesce(WorkItem.completed_at, now))


def _priority_rank():
    return case(*((WorkItem.priority == p, r) for p, r in PRIORITY_RANK.items()),
                else_=len(PRIORITY_RANK))


def to_public(item, *, mentee_name: str | None, at: datetime) -> WorkItemPublic:
    """From a WorkItem or a row with its columns."""
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


Rank = Annotated[int, Field(ge=0, le=100)]
# (as of, overdue rank, priority rank, due_at, id): every page is judged as of the first's
# instant, so the keyset stays exact.
QUEUE_CURSOR = Keyset("workqueue", BoundedDatetime, Rank, Rank, BoundedDatetime, uuid.UUID)


def _decode(cursor: str | None) -> tuple[datetime, tuple[int, int, datetime, uuid.UUID]] | None:
    value = QUEUE_CURSOR.decode(cursor)
    return None if value is None else (value[0], value[1:])


_ITEM_COLUMNS = (
    WorkItem.id, WorkItem.kind, WorkItem.priority, WorkItem.status, WorkItem.mentee_id,
    WorkItem.title, WorkItem.details, WorkItem.due_at, WorkItem.overdue, WorkItem.note,
    WorkItem.created_at, WorkItem.started_at, WorkItem.completed_at, WorkItem.completed_by,
)
_TEXTS = ARRAY(Text)


@functools.cache
def _page_statement(*, kind: bool, priority: bool, overdue: bool | None, mentee: bool,
                    after: bool) -> DriverQuery:
    """The page query for one combination of filters, built and compiled once with bind
    parameters (so neither SQLAlchemy nor asyncpg re-compiles or re-prepares it per
    request), run on the driver connection (app/core/sql.py). Arrays bound with
    `= ANY(...)` keep the SQL text the same whatever the number of values."""
    at = bindparam("at", type_=DateTime(timezone=True))
    is_overdue = overdue_expr(at)
    k_overdue = case((is_overdue, 0), else_=1)
    k_priority = _priority_rank()
    mentees = select(Assignment.mentee_id).where(
        Assignment.mentor_id == bindparam("mentor_id", type_=UUID(as_uuid=True)),
        Assignment.ended_at.is_(None),
    )
    stmt = (
        select(*_ITEM_COLUMNS, User.name.label("mentee_name"), k_overdue.label("k_overdue"),
               k_priority.label("k_priority"))
        .join(User, User.id == WorkItem.mentee_id)
        .where(WorkItem.mentee_id.in_(mentees))
        .where(WorkItem.status == any_(bindparam("statuses", type_=_TEXTS)))
    )
    if kind:
        stmt = stmt.where(WorkItem.kind == any_(bindparam("kinds", type_=_TEXTS)))
    if priority:
        stmt = stmt.where(WorkItem.priority == any_(bindparam("priorities", type_=_TEXTS)))
    if overdue is not None:
        stmt = stmt.where(is_overdue if overdue else not_(is_overdue))
    if mentee:
        stmt = stmt.where(WorkItem.mentee_id == bindparam("mentee_id",
                                                          type_=UUID(as_uuid=True)))
    if after:
        stmt = stmt.where(
            tuple_(k_overdue, k_priority, WorkItem.due_at, WorkItem.id)
            > tuple_(bindparam("after_overdue", type_=Integer),
                     bindparam("after_priority", type_=Integer),
                     bindparam("after_due_at", type_=DateTime(timezone=True)),
                     bindparam("after_id", type_=UUID(as_uuid=True)))
        )
    stmt = (stmt.order_by(k_overdue, k_priority, WorkItem.due_at, WorkItem.id)
            .limit(bindparam("fetch", type_=Integer)))
    return DriverQuery(stmt)


def _public_of_record(row, *, at: datetime) -> WorkItemPublic:
    """`to_public` of a page query's record (asyncpg: by key, not attribute)."""
    status, due_at, completed_at = row["status"], row["due_at"], row["completed_at"]
    return WorkItemPublic(
        id=row["id"], kind=row["kind"], priority=row["priority"], status=status,
        mentee_id=row["mentee_id"], mentee_name=row["mentee_name"], title=row["title"],
        details=row["details"] or {}, due_at=due_at,
        overdue=bool(row["overdue"]) or due_at < (completed_at or at),
        sla_remaining_minutes=(math.floor((due_at - at).total_seconds() / 60)
                               if status != "done" else None),
        note=row["note"], created_at=row["created_at"], started_at=row["started_at"],
        completed_at=completed_at, completed_by=row["completed_by"],
    )


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
    query = _page_statement(kind=bool(filters.kind), priority=bool(filters.priority),
                            overdue=filters.overdue, mentee=filters.mentee_id is not None,
                            after=decoded is not None)
    params: dict = {"at": at, "mentor_id": mentor_id, "statuses": list(filters.status),
                    "kinds": list(filters.kind), "priorities": list(filters.priority),
                    "mentee_id": filters.mentee_id, "fetch": limit + 1}
    if decoded:
        keys = ("after_overdue", "after_priority", "after_due_at", "after_id")
        params.update(zip(keys, decoded[1], strict=True))
    rows = await query.fetch(session, params)
    page, more = rows[:limit], len(rows) > limit
    items = [_public_of_record(row, at=at) for row in page]
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = QUEUE_CURSOR.encode(at, last["k_overdue"], last["k_priority"],
                                          last["due_at"], last["id"])
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

