"""Risk inputs: flags raised by mentors, readiness history and other inbound signals."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UUIDPk

Severity = Literal["low", "medium", "high", "critical"]
FlagStatus = Literal["open", "resolved"]
SignalKind = Literal["habit_streak_broken", "goal_overdue"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
FLAG_STATUSES: tuple[str, ...] = get_args(FlagStatus)
SIGNAL_KINDS: tuple[str, ...] = get_args(SignalKind)
# Why a mentee is at risk (app/services/risk/scoring.py): stable strings, in listing order.
RiskReason = Literal["open_flag", "no_show_last_session", "readiness_drop", "overdue_work",
                     "habit_streak_broken", "no_recent_session"]
RISK_REASONS: tuple[str, ...] = get_args(RiskReason)


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (
        CheckConstraint(f"severity in {SEVERITIES!r}", name="severity"),
        CheckConstraint(f"status in {FLAG_STATUSES!r}", name="status"),
        Index("ix_flags_mentee_id_status", "mentee_id", "status"),
        Index("ix_flags_status_severity_created_at", "status", "severity", "created_at"),
    )

    id: Mapped[UUIDPk]
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    raised_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)  # never shown to the mentee
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[uuid.UUID | None]
    resolved_at: Mapped[datetime | None]
    # A director's escalation of an open flag; the stored status stays `open` (every "open
    # flag" rule keeps counting it) and the API shows `escalated` (migration 0011).
    escalated_at: Mapped[datetime | None]
    escalated_by: Mapped[uuid.UUID | None]
    created_at: Mapped[CreatedAt]


class ReadinessRecord(Base):
    __tablename__ = "readiness_history"
    __table_args__ = (
        Index("ix_readiness_history_mentee_id_recorded_at", "mentee_id", "recorded_at"),
    )

    id: Mapped[UUIDPk]
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    score: Mapped[float]
    previous_score: Mapped[float | None]
    recorded_at: Mapped[datetime]
    event_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)


class MenteeSignal(Base):
    """Inbound facts about a mentee that feed risk (broken habit streaks, overdue goals)."""

    __tablename__ = "mentee_signals"
    __table_args__ = (
        CheckConstraint(f"kind in {SIGNAL_KINDS!r}", name="kind"),
        Index("ix_mentee_signals_mentee_id_kind_occurred_at", "mentee_id", "kind", "occurred_at"),
    )

    id: Mapped[UUIDPk]
    mentee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    occurred_at: Mapped[datetime]
    event_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    created_at: Mapped[CreatedAt]
