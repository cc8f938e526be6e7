"""Event plumbing: the inbox (processed inbound ids) and the transactional outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt

REFRESH_PRIORITIES = ("urgent", "high", "normal")


class InboxEvent(Base):
    """One row per inbound event id, written in the same transaction as its effect."""

    __tablename__ = "inbox_events"
    __table_args__ = (Index("ix_inbox_events_received_at", "received_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[CreatedAt]


class OutboxEvent(Base):
    """An outbound event, written with the change that caused it; the relay publishes it."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint(f"refresh_priority in {REFRESH_PRIORITIES!r}", name="refresh_priority"),
        # The relay's claim scans only unpublished rows, oldest first.
        Index("ix_outbox_events_pending", "created_at",
              postgresql_where=text("published_at is null")),
        # Retention removes published rows oldest first.
        Index("ix_outbox_events_published_at", "published_at",
              postgresql_where=text("published_at is not null")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the envelope's event id
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    refresh_priority: Mapped[str] = mapped_column(String(16))
    # Users whose real-time stream receives the event.
    recipients: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(PgUUID(as_uuid=True)), server_default="{}"
    )
    created_at: Mapped[CreatedAt]
    claimed_until: Mapped[datetime | None]  # a relay's lease; expired leases are re-claimed
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    published_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
