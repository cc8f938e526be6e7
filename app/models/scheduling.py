"""A mentor's time off (periods in which no session may start or run) and the timers of a
session (reminders, follow-up), which a trigger of migration 0015 keeps."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UUIDPk


class TimeOff(Base):
    __tablename__ = "mentor_time_off"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period"),
        Index("ix_mentor_time_off_mentor_id_starts_at", "mentor_id", "starts_at"),
    )

    id: Mapped[UUIDPk]
    mentor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]


TIMER_KINDS = ("reminder:1440", "reminder:60", "followup")


class SessionTimer(Base):
    """Written only by the database trigger (arm, re-arm, disarm) and the workers (done)."""

    __tablename__ = "session_timers"
    __table_args__ = (
        CheckConstraint(f"kind in {TIMER_KINDS!r}", name="kind"),
        Index("ix_session_timers_pending_due_at", "due_at",
              postgresql_where=text("done_at is null")),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    due_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class CalendarFeedToken(Base):
    """The SHA-256 of a user's current calendar feed token (one per user)."""

    __tablename__ = "calendar_feed_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[CreatedAt]
