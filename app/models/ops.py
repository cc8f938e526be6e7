"""Operational records written by the workers: capacity alerts, programme metrics."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt


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
