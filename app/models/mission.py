"""Mission submissions (from `mission.submitted`) and the mentor's review of each."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UUIDPk

SUBMISSION_STATUSES = ("pending", "approved", "changes_requested", "rejected")
DECISIONS = ("approved", "changes_requested", "rejected")


class MissionSubmission(Base):
    __tablename__ = "mission_submissions"
    __table_args__ = (
        CheckConstraint(f"status in {SUBMISSION_STATUSES!r}", name="status"),
        Index("ix_mission_submissions_mentee_id_submitted_at", "mentee_id", "submitted_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the platform's submission_id
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mission_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(24), server_default="pending")
    created_at: Mapped[CreatedAt]


class MissionReview(Base):
    __tablename__ = "mission_reviews"
    __table_args__ = (
        CheckConstraint(f"decision in {DECISIONS!r}", name="decision"),
        CheckConstraint("score is null or score between 0 and 100", name="score"),
        Index("ix_mission_reviews_mentee_id", "mentee_id"),
    )

    id: Mapped[UUIDPk]
    # Unique: a decided submission cannot be reviewed a second time.
    submission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mission_submissions.id", ondelete="CASCADE"), unique=True
    )
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mentor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(24))
    feedback: Mapped[str | None] = mapped_column(Text)
    score: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[CreatedAt]
