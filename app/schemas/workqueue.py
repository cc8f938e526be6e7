"""Work queue shapes: one item as the mentor sees it, the page, and the status change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.models.work_item import Priority, WorkItemKind, WorkItemStatus
from app.schemas.common import Page
from app.schemas.types import Note, OutputText


class WorkItemPublic(BaseModel):
    id: uuid.UUID
    kind: WorkItemKind
    priority: Priority
    status: WorkItemStatus
    mentee_id: uuid.UUID
    mentee_name: OutputText | None = None
    title: OutputText
    details: dict = Field(default_factory=dict)
    due_at: datetime
    overdue: bool = Field(
        description="Past its SLA: for an unfinished item `due_at` is before `as_of`; for a "
                    "done item it was completed after `due_at` (or the SLA sweep marked it)."
    )
    sla_remaining_minutes: int | None = Field(
        description="Whole minutes from `as_of` until `due_at` (rounded down, negative once "
                    "overdue); null for done items, whose SLA no longer runs."
    )
    note: OutputText | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: uuid.UUID | None = None


class WorkQueuePage(Page[WorkItemPublic]):
    as_of: datetime = Field(
        description="The reference time for `overdue`, `sla_remaining_minutes` and the order. "
                    "Every page of one walk (following `next_cursor`) shares it, so the order "
                    "cannot shift under the cursor."
    )


class WorkItemUpdate(BaseModel):
    """open → in_progress → done, or open → done. Done is final."""

    status: Literal["in_progress", "done"]
    note: Note | None = None
