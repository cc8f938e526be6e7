"""The mentor's work queue. Items belong to a mentee; the mentee's active mentor sees them,
so an item created while a mentee has no mentor lands in the queue of whoever is assigned."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UpdatedAt, UUIDPk

WorkItemKind = Literal["mission_review", "risk_assessment", "goal_feedback", "session_followup"]
Priority = Literal["low", "normal", "high", "urgent"]  # in escalation order
WorkItemStatus = Literal["open", "in_progress", "done"]
WORK_ITEM_KINDS: tuple[str, ...] = get_args(WorkItemKind)
PRIORITIES: tuple[str, ...] = get_args(Priority)
WORK_ITEM_STATUSES: tuple[str, ...] = get_args(WorkItemStatus)
# 75 % of an item's SLA window (created_at -> due_at), as a UTC timestamp (UTC arithmetic:
# no session time zone involved).
ESCALATION_INSTANT = (
    "((created_at at time zone 'UTC')"
    " + ((due_at at time zone 'UTC') - (created_at at time zone 'UTC')) * 0.75)"
)
# The instant of an unfinished item's next SLA step: ESCALATION_INSTANT until the priority
# has been raised, then due_at until the item is marked overdue. An immutable SQL function
# (migration 0007), so it is indexed; the prioritizer selects
# `NEXT_SLA_STEP <= now at time zone 'UTC'` among the PENDING_SLA_STEP rows.
NEXT_SLA_STEP = "work_item_next_sla_step(created_at, due_at, escalated_at)"
PENDING_SLA_STEP = "status <> 'done' and (escalated_at is null or not overdue)"


class WorkItem(Base):
    __tablename__ = "work_items"
    __table_args__ = (
        CheckConstraint(f"kind in {WORK_ITEM_KINDS!r}", name="kind"),
        CheckConstraint(f"priority in {PRIORITIES!r}", name="priority"),
        CheckConstraint(f"status in {WORK_ITEM_STATUSES!r}", name="status"),
        CheckConstraint("due_at > created_at", name="due_after_created"),
        Index("ix_work_items_mentee_id_status", "mentee_id", "status"),
        # The prioritizer's sweep only looks at unfinished items.
        Index("ix_work_items_open_due_at", "due_at", postgresql_where=text("status <> 'done'")),
        # The prioritizer's sweep: a range scan over the items with an SLA step pending.
        Index("ix_work_items_sla_next_step", text(NEXT_SLA_STEP),
              postgresql_where=text(PENDING_SLA_STEP)),
        # A mentee's unfinished items (risk's overdue check, the dashboard counts) without
        # wading through their ever-growing history of done ones.
        Index("ix_work_items_unfinished_mentee_id_due_at", "mentee_id", "due_at",
              postgresql_where=text("status <> 'done'")),
        Index("ix_work_items_completed_at", "completed_at",
              postgresql_where=text("completed_at is not null")),
    )

    id: Mapped[UUIDPk]
    kind: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What caused the item (e.g. "mission.submitted:<submission id>"): unique, so a repeated
    # event or job creates nothing.
    source_key: Mapped[str] = mapped_column(Text, unique=True)
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    due_at: Mapped[datetime]
    overdue: Mapped[bool] = mapped_column(server_default=text("false"))
    escalated_at: Mapped[datetime | None]  # priority raised once 75 % of the SLA passed
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[uuid.UUID | None]
