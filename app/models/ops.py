"""Operational records written by the workers: matcher runs, capacity alerts, metrics."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UUIDPk


class MatchingRun(Base):
    __tablename__ = "matching_runs"
    __table_args__ = (
        CheckConstraint("status in ('queued', 'running', 'done', 'failed', 'skipped')",
                        name="status"),
    )

    id: Mapped[UUIDPk]
    job_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    requested_by: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    assigned_count: Mapped[int | None]
    unplaced_count: Mapped[int | None]
    total_fit: Mapped[float | None]
    duration_ms: Mapped[int | None]
    solver_ms: Mapped[int | None]
    # mentee id -> reason, for every mentee the run could not place
    unplaced: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]


class CapacityAlert(Base):
    """`capacity.exceeded` is raised once per mentor per ISO week: this row remembers it."""

    __tablename__ = "capacity_alerts"

    mentor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    iso_week: Mapped[str] = mapped_column(String(8), primary_key=True)  # e.g. "2026-W48"
    weekly_slots_used: Mapped[int]
    weekly_slots_total: Mapped[int]
    mentees_active: Mapped[int]
    mentees_max: Mapped[int]
    created_at: Mapped[CreatedAt]


class ProgrammeMetric(Base):
    """The five programme metrics, refreshed by a worker job, read by /metrics and the API."""

    __tablename__ = "programme_metrics"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    computed_at: Mapped[datetime]


class ProgrammeMetricDay(Base):
    """One UTC day's value of one programme metric (the day's latest computation)."""

    __tablename__ = "programme_metrics_daily"

    day: Mapped[date] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    computed_at: Mapped[datetime]
