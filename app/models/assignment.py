"""Who mentors whom. One active assignment per mentee; ended ones are history."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UUIDPk


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint("source in ('manual', 'auto')", name="source"),
        CheckConstraint("mentor_id <> mentee_id", name="not_self"),
        # The database keeps "one active assignment per mentee".
        Index(
            "uq_assignments_active_mentee",
            "mentee_id",
            unique=True,
            postgresql_where=text("ended_at is null"),
        ),
        Index("ix_assignments_active_mentor", "mentor_id", "mentee_id",
              postgresql_where=text("ended_at is null")),
        Index("ix_assignments_mentee_id", "mentee_id"),
    )

    id: Mapped[UUIDPk]
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mentor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16), server_default="manual")
    score: Mapped[float | None]
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    assigned_by: Mapped[uuid.UUID | None]
    started_at: Mapped[CreatedAt]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(Text)


class WaitingMentee(Base):
    """An active mentee with no active assignment, since when. Kept by database triggers
    on assignments and users (migration 0011); the code only reads it."""

    __tablename__ = "waiting_mentees"
    __table_args__ = (Index("ix_waiting_mentees_since_mentee_id", "since", "mentee_id"),)

    mentee_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    since: Mapped[datetime]
