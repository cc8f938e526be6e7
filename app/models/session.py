"""Mentoring sessions and their feedback.

Overlaps are refused by the database: two exclusion constraints (btree_gist) over
tstzrange(starts_at, ends_at, '[)') for live sessions of one mentor and of one mentee.
They are hand-written in the migration; `__table_args__` only mirrors them for Alembic.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UpdatedAt, UUIDPk

SESSION_STATUSES = ("scheduled", "completed", "no_show", "cancelled")
LIVE_STATUSES = ("scheduled", "completed", "no_show")  # occupy a slot and count for capacity
LIVE_SESSION = text("status <> 'cancelled'")
SESSION_RANGE = text("tstzrange(starts_at, ends_at, '[)')")


class MentoringSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(f"status in {SESSION_STATUSES!r}", name="status"),
        CheckConstraint("duration_minutes between 15 and 240", name="duration"),
        CheckConstraint(
            "ends_at = starts_at + make_interval(mins => duration_minutes)", name="ends_at"
        ),
        ExcludeConstraint(
            ("mentor_id", "="), (SESSION_RANGE, "&&"),
            name="ex_sessions_mentor_overlap", using="gist", where=LIVE_SESSION,
        ),
        ExcludeConstraint(
            ("mentee_id", "="), (SESSION_RANGE, "&&"),
            name="ex_sessions_mentee_overlap", using="gist", where=LIVE_SESSION,
        ),
        Index("ix_sessions_mentor_id_starts_at", "mentor_id", "starts_at"),
        Index("ix_sessions_mentee_id_starts_at", "mentee_id", "starts_at"),
    )

    id: Mapped[UUIDPk]
    mentor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="scheduled")
    meeting_url: Mapped[str | None] = mapped_column(Text)
    # The video provider's meeting id (Zoom); NULL for Jitsi-style rooms.
    video_meeting_id: Mapped[str | None] = mapped_column(Text)
    agenda: Mapped[str | None] = mapped_column(Text)
    mentor_notes: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # iCalendar SEQUENCE: raised on every reschedule or cancellation.
    sequence: Mapped[int] = mapped_column(server_default=text("0"))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]


class SessionFeedback(Base):
    __tablename__ = "session_feedback"
    __table_args__ = (
        CheckConstraint("rating between 1 and 5", name="rating"),
        Index("ix_session_feedback_mentor_id", "mentor_id"),
        Index("ix_session_feedback_mentee_id", "mentee_id"),
    )

    id: Mapped[UUIDPk]
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), unique=True
    )
    # Copied from the session so the RLS predicates need no join.
    mentor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
