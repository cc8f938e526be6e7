"""Creating work items: idempotent by `source_key`, SLA from settings, outbox in the same
transaction. Listing, transitions and the SLA sweep build on this module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.outbox import OutboundEvent, emit_many
from app.core.sql import insert
from app.models import Assignment, WorkItem
from app.models.work_item import PRIORITIES

PRIORITY_ORDER = PRIORITIES  # escalation order, lowest first


@dataclass(frozen=True)
class NewWorkItem:
    kind: str
    mentee_id: uuid.UUID
    source_key: str
    title: str
    details: dict[str, Any] | None = None
    created_at: datetime | None = None


async def create_work_item(
    session: AsyncSession,
    *,
    settings: Settings,
    kind: str,
    mentee_id: uuid.UUID,
    source_key: str,
    title: str,
    details: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> uuid.UUID | None:
    """Create the item unless one with `source_key` exists. Returns the new id, or None
    when it already existed (a repeated event or job: nothing changes, nothing is emitted).

    The due date follows the kind's SLA policy from `created_at` (default: now)."""
    created = await create_work_items(session, settings=settings, items=[NewWorkItem(
        kind=kind, mentee_id=mentee_id, source_key=source_key, title=title, details=details,
        created_at=created_at,
    )])
    return created.get(source_key)


async def create_work_items(
    session: AsyncSession, *, settings: Settings, items: Sequence[NewWorkItem]
) -> dict[str, uuid.UUID]:
    """`create_work_item` for many items in three statements whatever their number (event
    batches): returns {source_key: new id} for the items created; existing keys are skipped
    silently. Each created item emits `workqueue.item_created` to the mentee's mentor."""
    now = datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for item in items:
        policy = settings.sla(item.kind)
        created_at = item.created_at or now
        rows.setdefault(item.source_key, {
            "id": uuid.uuid4(), "kind": item.kind, "priority": policy.priority,
            "mentee_id": item.mentee_id, "source_key": item.source_key, "title": item.title,
            "details": item.details or {}, "created_at": created_at,
            "due_at": created_at + timedelta(hours=policy.hours),
        })
    if not rows:
        return {}
    # executemany form: one cached statement, sent as multi-row VALUES by SQLAlchemy; in key
    # order, so concurrent callers sharing keys wait on them in the same order (no deadlock).
    created = dict((await session.execute(
        insert(WorkItem.__table__).on_conflict_do_nothing(index_elements=["source_key"])
        .returning(WorkItem.source_key, WorkItem.id),
        [rows[key] for key in sorted(rows)],
    )).tuples().all())
    if not created:
        return {}
    new_rows = [rows[key] for key in rows if key in created]
    mentors = dict((await session.execute(
        select(Assignment.mentee_id, Assignment.mentor_id).where(
            Assignment.mentee_id.in_({row["mentee_id"] for row in new_rows}),
            Assignment.ended_at.is_(None),
        )
    )).tuples().all())
    await emit_many(session, [
        OutboundEvent("workqueue.item_created", {
            "item_id": row["id"], "kind": row["kind"], "priority": row["priority"],
            "mentee_id": row["mentee_id"], "due_at": row["due_at"], "title": row["title"],
        }, [mentors.get(row["mentee_id"])], now)
        for row in new_rows
    ])
    return created
