"""Creating work items: idempotent by `source_key`, SLA from settings, outbox in the same
transaction. Listing, transitions and the SLA sweep build on this module."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import WorkItem
from app.services.outbox import active_mentor_id, emit

PRIORITY_ORDER = ("low", "normal", "high", "urgent")


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
    policy = settings.sla(kind)
    created = created_at or datetime.now(UTC)
    item_id = uuid.uuid4()
    statement = (
        insert(WorkItem)
        .values(
            id=item_id,
            kind=kind,
            priority=policy.priority,
            mentee_id=mentee_id,
            source_key=source_key,
            title=title,
            details=details or {},
            created_at=created,
            due_at=created + timedelta(hours=policy.hours),
        )
        .on_conflict_do_nothing(index_elements=["source_key"])
        .returning(WorkItem.id)
    )
    if await session.scalar(statement) is None:
        return None
    await emit(
        session,
        type="workqueue.item_created",
        data={
            "item_id": item_id,
            "kind": kind,
            "priority": policy.priority,
            "mentee_id": mentee_id,
            "due_at": created + timedelta(hours=policy.hours),
            "title": title,
        },
        recipients=[await active_mentor_id(session, mentee_id)],
    )
    return item_id
